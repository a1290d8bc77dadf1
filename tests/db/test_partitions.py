"""The partitioned predictions table (migration 0010, db/partitions.py), on a real PostgreSQL.

Each promise against what breaks it: a filled database converted (and back) without losing a
row, an insert no partition covers, references to rows that move or go, retention dropping whole
months and nothing else, a window query reading only its months (the API's part:
tests/api/test_partitions.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from db.manage import downgrade, migrate
from db.partitions import (
    count_default_rows,
    drop_partitions_before,
    list_partitions,
    maintain_partitions,
)
from db.predictions import count_query, create_predictions
from db.session import get_engine, session_scope
from model.contract import FEATURE_NAMES
from tests.factories import customer_records

CHECKSUMS = {  # per table: the columns every version of the schema has, hashed in id order
    "predictions": "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.id)) FROM predictions t",
    "labels": "SELECT count(*), md5(string_agg((id, customer_id, churn, known_at, label_file_id, "
              "prediction_id)::text, '|' ORDER BY id)) FROM labels",
    "shadow_predictions": "SELECT count(*), md5(string_agg((id, prediction_id, model_version, "
                          "predicted_label, churn_probability)::text, '|' ORDER BY id)) "
                          "FROM shadow_predictions",
    "prediction_batches": "SELECT count(*), md5(string_agg(b::text, '|' ORDER BY batch_key)) "
                          "FROM prediction_batches b",
}
FEATURE_VALUES = ("(g % 2), (g % 5 = 0)::int, 1, 0, (g % 72), 1, 'No', 'DSL', 'No', 'Yes', 'No', "
                  "'No', 'No', 'No', 'Month-to-month', 1, 'Electronic check', 20.0 + g % 80, "
                  "CASE WHEN g % 97 = 0 THEN NULL ELSE 100.0 + g END")


def _sql(statement: str, **params: Any) -> list[Any]:
    with get_engine().begin() as connection:
        result = connection.execute(text(statement), params)
        return list(result) if result.returns_rows else []


def _checksums() -> dict[str, tuple[int, str]]:
    return {table: tuple(_sql(query)[0]) for table, query in CHECKSUMS.items()}


def _fill_unpartitioned(rows: int) -> None:
    """The 0009 schema filled as production fills it: three months of predictions (some in
    batches), labels joined to them, the challenger's shadow scores, an unlinked label."""
    _sql("INSERT INTO prediction_batches (batch_key, file_name, rows) "
         "SELECT 'file-' || g, 'f' || g || '.csv', 100 FROM generate_series(0, :batches) g",
         batches=rows // 100)
    _sql(f"""
        INSERT INTO predictions (created_at, source, file_name, batch_key, model_version, predicted_label,
                                 churn_probability, customer_id, {", ".join(FEATURE_NAMES)},
                                 reason_1_feature, reason_1_contribution, rest_contribution)
        SELECT timestamptz '2025-05-20 12:00Z' + g * interval '61 minutes',
               CASE WHEN g % 3 = 0 THEN 'webapp' ELSE 'scheduled' END,
               CASE WHEN g % 3 = 0 THEN NULL ELSE 'f' || (g / 100) || '.csv' END,
               CASE WHEN g % 3 = 0 THEN NULL ELSE 'file-' || (g / 100) END,
               'm-1', (g % 4 = 0)::int, (g % 100) / 100.0, 'C' || g, {FEATURE_VALUES},
               CASE WHEN g % 7 = 0 THEN NULL ELSE 'tenure' END, g / 1000.0, -g / 3000.0
        FROM generate_series(1, :rows) g
    """, rows=rows)
    file_id = _sql("INSERT INTO label_files (file_name, checksum, rows, stored_rows, invalid_rows, "
                   "duplicate_rows, contradictory_rows, matched_rows, outcome, errors) VALUES "
                   "('l.csv', 'x', 0, 0, 0, 0, 0, 0, 'good', '{}') RETURNING id")[0][0]
    _sql("INSERT INTO labels (customer_id, churn, known_at, label_file_id, prediction_id) "
         "SELECT customer_id, id % 2, created_at + interval '1 day', :file, id FROM predictions "
         "WHERE id % 10 = 0", file=file_id)
    _sql("INSERT INTO labels (customer_id, churn, known_at, label_file_id) "
         "VALUES ('nobody', 1, now(), :file)", file=file_id)
    _sql("INSERT INTO shadow_predictions (prediction_id, model_version, predicted_label, churn_probability) "
         "SELECT id, 'm-2', 1 - predicted_label, churn_probability / 2 FROM predictions WHERE id % 5 = 0")


def test_migration_converts_a_filled_database_without_losing_a_row_and_back(clean_db: str) -> None:
    downgrade(clean_db, "0010")
    try:
        _fill_unpartitioned(3_000)
        before = _checksums()
        migrate(clean_db, "0011")
        assert _checksums() == before
        with session_scope() as session:
            months = [p.name for p in list_partitions(session=session)]
            assert count_default_rows(session=session) == 0
        assert months[:3] == ["predictions_p2025_05", "predictions_p2025_06", "predictions_p2025_07"]
        now = datetime.now(UTC)
        assert f"predictions_p{now:%Y_%m}" in months  # this month and three ahead are ready
        # every reference now carries its prediction's time, equal to the prediction's own
        assert _sql("SELECT count(*) FROM labels l JOIN predictions p ON p.id = l.prediction_id "
                    "AND p.created_at = l.prediction_created_at") == [(before["labels"][0] - 1,)]
        assert _sql("SELECT count(*) FROM shadow_predictions WHERE prediction_created_at IS NULL") == [(0,)]
        # the sequence goes on from the copied ids: a new row gets the next id
        [new_id] = _write_now(1)
        assert new_id == before["predictions"][0] + 1
        downgrade(clean_db, "0010")
        after_round_trip = _checksums()
        assert after_round_trip["predictions"][0] == before["predictions"][0] + 1
        _sql("DELETE FROM predictions WHERE id = :id", id=new_id)
        assert _checksums() == before
        assert _sql("SELECT relkind FROM pg_class WHERE relname = 'predictions'") == [("r",)]
    finally:
        migrate(clean_db)


def _write_now(count: int, **changes: Any) -> list[int]:
    records = customer_records(count)
    with session_scope() as session:
        return create_predictions(session=session, source="webapp", records=records, labels=[0] * count,
                                  probabilities=[0.1] * count, model_version="m-1", **changes).ids


def _label_and_shadow(prediction_id: int) -> None:
    """A label and a shadow score naming the prediction by id alone (as the writers do)."""
    file_id = _sql("INSERT INTO label_files (file_name, checksum, rows, stored_rows, invalid_rows, "
                   "duplicate_rows, contradictory_rows, matched_rows, outcome, errors) VALUES "
                   "(:name, 'x', 1, 1, 0, 0, 0, 1, 'good', '{}') RETURNING id",
                   name=f"labels-{prediction_id}.csv")[0][0]
    _sql("INSERT INTO labels (customer_id, churn, known_at, label_file_id, prediction_id) "
         "VALUES (:c, 1, now(), :f, :p)", c=f"C-{prediction_id}", f=file_id, p=prediction_id)
    _sql("INSERT INTO shadow_predictions (prediction_id, model_version, predicted_label, churn_probability) "
         "VALUES (:p, 'm-2', 1, 0.9)", p=prediction_id)


def test_a_row_no_month_covers_is_kept_in_the_default_and_moved_with_its_references(clean_db: str) -> None:
    far = datetime(2031, 5, 17, 8, 30, tzinfo=UTC)  # beyond any partition made ahead
    _sql(f"INSERT INTO predictions (created_at, source, model_version, predicted_label, churn_probability, "
         f"{', '.join(FEATURE_NAMES)}) SELECT :at, 'webapp', 'm-1', 1, 0.7, {FEATURE_VALUES} "
         f"FROM generate_series(1, 3) g", at=far)
    [(stray,)] = _sql("SELECT min(id) FROM predictions_default")
    _label_and_shadow(stray)  # referenced while it sits in the default partition
    assert _sql("SELECT prediction_created_at FROM labels") == [(far,)]  # filled by the trigger

    with session_scope() as session:
        report = maintain_partitions(session=session, months_ahead=3, retention_days=None)
    assert report.moved_from_default == 3 and "predictions_p2031_05" in report.created
    assert _sql("SELECT count(*) FROM predictions_default") == [(0,)]
    assert _sql("SELECT count(*) FROM predictions_p2031_05") == [(3,)]
    assert _sql("SELECT l.prediction_id, s.prediction_id FROM labels l, shadow_predictions s") == [
        (stray, stray)]
    # the references are enforced again after the move: a shadow score of a missing row is refused
    assert _references_enforced(stray, far + timedelta(seconds=1))


def _references_enforced(prediction_id: int, created_at: datetime) -> bool:
    try:
        _sql("INSERT INTO shadow_predictions (prediction_id, prediction_created_at, model_version, "
             "predicted_label, churn_probability) VALUES (:p, :at, 'm-3', 1, 0.5)",
             p=prediction_id, at=created_at)
    except Exception as error:  # the database's refusal is what is checked
        return "violates foreign key constraint" in str(error)
    return False


def test_maintenance_keeps_months_ahead(clean_db: str) -> None:
    now = datetime(2026, 11, 3, tzinfo=UTC)
    with session_scope() as session:
        maintain_partitions(session=session, months_ahead=4, retention_days=None, now=now)
        names = {p.name for p in list_partitions(session=session)}
        again = maintain_partitions(session=session, months_ahead=4, retention_days=None, now=now)
    assert {f"predictions_p{m}" for m in ("2026_11", "2026_12", "2027_01", "2027_02", "2027_03")} <= names
    assert again.created == [] and again.dropped == []  # idempotent


def test_retention_drops_whole_old_months_and_unlinks_what_referred_to_them(clean_db: str) -> None:
    january = _write_now(2, created_at=datetime(2025, 1, 10, tzinfo=UTC), batch_key="jan")
    february = _write_now(2, created_at=datetime(2025, 2, 27, tzinfo=UTC), batch_key="feb")
    current = _write_now(1)
    _label_and_shadow(january[0])
    _label_and_shadow(february[0])

    with session_scope() as session:  # unset retention keeps everything
        assert maintain_partitions(session=session, months_ahead=1, retention_days=None).dropped == []
    with session_scope() as session:  # 30 days before 2025-03-15: January has ended, February not
        report = maintain_partitions(session=session, months_ahead=1, retention_days=30,
                                     now=datetime(2025, 3, 15, tzinfo=UTC))
    assert report.dropped == ["predictions_p2025_01"]
    assert sorted(i for (i,) in _sql("SELECT id FROM predictions")) == sorted(february + current)
    # the label keeps its outcome and loses the link; the shadow score of a dropped row goes
    assert sorted(_sql("SELECT prediction_id, prediction_created_at IS NULL FROM labels"),
                  key=str) == sorted([(None, True), (february[0], False)], key=str)
    assert _sql("SELECT prediction_id FROM shadow_predictions") == [(february[0],)]
    assert _sql("SELECT batch_key FROM prediction_batches ORDER BY 1") == [("feb",)]
    with session_scope() as session:
        assert "predictions_p2025_01" not in {p.name for p in list_partitions(session=session)}
        assert drop_partitions_before(session=session, cutoff=datetime(2025, 2, 13, tzinfo=UTC)) == []


def test_a_window_query_reads_only_the_months_it_covers(clean_db: str) -> None:
    for month in (1, 2, 3):
        _write_now(1, created_at=datetime(2025, month, 5, tzinfo=UTC))
    start = datetime(2025, 2, 1, tzinfo=UTC)
    query = count_query(start, start + timedelta(days=1), None)
    compiled = query.compile(compile_kwargs={"literal_binds": True})
    plan = "\n".join(row[0] for row in _sql(f"EXPLAIN {compiled}"))
    assert "predictions_p2025_02" in plan
    assert "predictions_p2025_01" not in plan and "predictions_p2025_03" not in plan
    assert "predictions_default" not in plan


@dataclass(frozen=True)
class _LabelRow:
    customer_id: str
    churn: int
    known_at: datetime
    line: int


def test_the_writers_that_name_a_prediction_by_id_alone_still_link_it(clean_db: str) -> None:
    """Label ingestion and the challenger's shadow scores give only the prediction's id: the
    trigger completes the reference, and the gate's join finds both (db/labels.py,
    db/shadow_predictions.py unchanged)."""
    from db.labels import labelled_predictions, store_label_file
    from db.session import session_scope
    from db.shadow_predictions import count_shadow_predictions, gate_rows, store_shadow_predictions

    when = datetime(2025, 4, 2, 9, tzinfo=UTC)
    ids = _write_now(2, created_at=when)
    [(customer,)] = _sql("SELECT customer_id FROM predictions WHERE id = :id", id=ids[0])
    with session_scope() as session:
        store_label_file(session=session, file_name="l.csv", checksum="c", dag_run_id=None, total_rows=1,
                         invalid_rows=0, duplicates=0, errors={}, outcome=None,
                         rows=[_LabelRow(customer, 1, when + timedelta(days=3), 2)])
        store_shadow_predictions(session=session, prediction_ids=ids, model_version="m-2", labels=[1, 0],
                                 probabilities=[0.9, 0.2])

    assert _sql("SELECT prediction_id, prediction_created_at FROM labels") == [(ids[0], when)]
    assert _sql("SELECT prediction_id, prediction_created_at FROM shadow_predictions ORDER BY 1") == [
        (ids[0], when), (ids[1], when)]
    with session_scope() as session:
        assert count_shadow_predictions(session=session, prediction_ids=ids) == 2
        assert labelled_predictions(session=session)["prediction_id"].tolist() == [ids[0]]
        [gate] = gate_rows(session=session, champion="m-1", challenger="m-2", since=when - timedelta(days=1))
    assert (gate["outcome"], gate["challenger_label"]) == (1, 1)
