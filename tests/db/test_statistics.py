"""db/statistics.py: one upsert per ingestion of a file, on the real database (and migration 0005)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text

from db.manage import downgrade, load_baseline, migrate
from db.models import IngestedFile, IngestionError
from db.session import get_engine, session_scope
from db.statistics import delete_ingestion_statistics, record_ingestion_statistics

STARTED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ERRORS = {("out_of_range", "tenure"): 2, ("unknown_category", "contract"): 1, ("missing_value", "gender"): 0}


def _record(**changes: Any) -> int:
    arguments: dict[str, Any] = {
        "file_name": "f.csv", "dag_run_id": "run-1", "started_at": STARTED, "rows": 20,
        "valid_rows": 17, "invalid_rows": 3, "criticality": "medium", "outcome": "mixed",
        "report_url": "http://reports/f.html", "alert_sent": False, "error_counts": ERRORS, **changes,
    }
    with session_scope() as session:
        return record_ingestion_statistics(session=session, **arguments)


def _files() -> list[tuple[Any, ...]]:
    with session_scope() as session:
        return [
            (f.id, f.dag_run_id, f.file_name, f.rows, f.invalid_rows, f.alert_sent)
            for f in session.scalars(select(IngestedFile).order_by(IngestedFile.id))
        ]


def _errors() -> list[tuple[int, str, str | None, int]]:
    with session_scope() as session:
        return sorted(
            (e.ingested_file_id, e.error_type, e.column_name, e.count)
            for e in session.scalars(select(IngestionError))
        )


def test_a_second_write_of_one_ingestion_updates_its_row_and_replaces_its_errors(clean_db: str) -> None:
    first = _record()
    assert _record() == first  # a retried task: same row
    assert _files() == [(first, "run-1", "f.csv", 20, 3, False)]
    assert _errors() == [(first, "out_of_range", "tenure", 2), (first, "unknown_category", "contract", 1)]


def test_a_delivered_alert_stays_recorded_whatever_comes_after(clean_db: str) -> None:
    alerted = _record(alert_sent=True)  # send-alerts wrote the row first
    assert _record(alert_sent=False) == alerted  # then save-statistics
    assert _files()[0][-1] is True
    _record(alert_sent=None)
    assert _files()[0][-1] is True
    assert len(_errors()) == 2


def test_each_run_and_each_file_has_its_own_row_and_no_run_id_never_merges(clean_db: str) -> None:
    ids = {_record(), _record(dag_run_id="run-2"), _record(file_name="g.csv")}
    ids |= {_record(dag_run_id=None), _record(dag_run_id=None)}
    assert len(ids) == len(_files()) == 5
    with session_scope() as session:
        assert delete_ingestion_statistics(session=session, dag_run_id="run-1") == 2
    assert sorted(f[1] or "" for f in _files()) == ["", "", "run-2"]
    assert len(_errors()) == 2 * 3  # the deleted files' error rows went with them


def test_migration_0005_merges_rows_stored_twice_before_the_key_existed(clean_db: str) -> None:
    downgrade(clean_db, "0004")
    try:
        with get_engine().begin() as connection:
            for alert_sent in (False, True, None):  # one ingestion stored three times
                file_id = connection.execute(text(
                    "INSERT INTO ingested_files (file_name, dag_run_id, started_at, rows, valid_rows,"
                    " invalid_rows, criticality, outcome, alert_sent) VALUES ('twice.csv', 'run-1', now(),"
                    " 20, 17, 3, 'medium', 'mixed', :alert) RETURNING id"
                ), {"alert": alert_sent}).scalar_one()
                connection.execute(text(
                    "INSERT INTO ingestion_errors (ingested_file_id, error_type, column_name, count)"
                    " VALUES (:id, 'out_of_range', 'tenure', 3)"
                ), {"id": file_id})
    finally:
        migrate(clean_db)
        load_baseline()  # the monitoring reference (migration 0008, after 0005) went with the downgrade
    [(kept, run, name, rows, invalid, alert_sent)] = _files()
    assert (run, name, rows, invalid, alert_sent) == ("run-1", "twice.csv", 20, 3, True)
    assert _errors() == [(kept, "out_of_range", "tenure", 3)]
    assert _record(file_name="twice.csv") == kept  # the unique key is in place
