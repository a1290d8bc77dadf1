"""Ingestion statistics (tables `ingested_files`, `ingestion_errors`): counts, never the rows.

One `ingested_files` row per ingestion of a file, keyed by (dag_run_id, file_name), and one
`ingestion_errors` row per (error type, column) of that file. The ingestion's save-statistics
and send-alerts tasks both write the row, in either order and possibly retried: each write is one
upsert on the key, so the row ends the same whatever the order and however many tries, with no
lock and no marker file. Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, case, delete, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from db.models import IngestedFile, IngestionError

UNIQUE_KEY = "uq_ingested_files_run_file"  # (dag_run_id, file_name), migration 0005
# (file_name, checksum) where checksum is set, migration 0006: one row per file content
CONTENT_KEY = ("file_name", "checksum")
# what a later write of the same ingestion replaces (ingested_at stays the first write's time)
STATISTICS_COLUMNS = (
    "started_at", "rows", "valid_rows", "invalid_rows", "criticality", "outcome", "report_url",
)


def record_ingestion_statistics(
    *,
    session: Session,
    file_name: str,
    dag_run_id: str | None,
    started_at: datetime,
    rows: int,
    valid_rows: int,
    invalid_rows: int,
    criticality: str,
    outcome: str,
    report_url: str | None,
    alert_sent: bool | None,
    error_counts: Mapping[tuple[str, str | None], int],
    ingested_at: datetime | None = None,
    checksum: str | None = None,
) -> int:
    """Store the statistics of one ingestion of a file, once; return the row's id.

    `rows`, `valid_rows` and `invalid_rows` count data rows; `criticality` is one of
    db.models.CRITICALITIES and `outcome` one of OUTCOMES. `alert_sent` is True once the alert was
    delivered, False when one is due but was not (yet) delivered, None when none is needed; a
    delivered alert already recorded stays recorded. `error_counts` maps (error type, column or
    None for file-level errors) to a row count; counts of 0 are not stored.
    `ingested_at` defaults to the database's now(); the demo-history command sets it.

    A second call for the same (dag_run_id, file_name) (a retried task, or the other task of the
    run) updates that row and replaces its error rows: nothing is counted twice. With `checksum`
    (SHA-256 hex of the file's bytes) the key is (file_name, checksum) instead, so a file whose
    claim was recovered after a crash and ingested again by a later run updates its first row
    (with the later run's id and report link). Without a run id nor a checksum every call stores
    a new row. Raises sqlalchemy.exc.IntegrityError for a criticality or outcome
    outside the allowed values.
    """
    values = {
        "file_name": file_name, "dag_run_id": dag_run_id, "started_at": started_at, "rows": rows,
        "valid_rows": valid_rows, "invalid_rows": invalid_rows, "criticality": criticality,
        "outcome": outcome, "report_url": report_url, "alert_sent": alert_sent, "checksum": checksum,
    }
    if ingested_at is not None:
        values["ingested_at"] = ingested_at
    upsert = pg_insert(IngestedFile).values(**values)
    new = upsert.excluded
    updates = {
        **{column: new[column] for column in STATISTICS_COLUMNS},
        "alert_sent": case((IngestedFile.alert_sent.is_(True), True), else_=new.alert_sent),
    }
    if checksum is None:
        statement = upsert.on_conflict_do_update(constraint=UNIQUE_KEY, set_=updates)
    else:
        statement = upsert.on_conflict_do_update(
            index_elements=list(CONTENT_KEY), index_where=IngestedFile.checksum.is_not(None),
            set_={**updates, "dag_run_id": new.dag_run_id},
        )
    ingested_id: int = session.execute(statement.returning(IngestedFile.id)).scalar_one()
    _replace_error_counts(session, ingested_id, error_counts)
    return ingested_id


def _replace_error_counts(
    session: Session, ingested_id: int, error_counts: Mapping[tuple[str, str | None], int],
) -> None:
    session.execute(delete(IngestionError).where(IngestionError.ingested_file_id == ingested_id))
    rows = [
        {"ingested_file_id": ingested_id, "error_type": error_type, "column_name": column, "count": count}
        for (error_type, column), count in error_counts.items()
        if count > 0
    ]
    if rows:
        session.execute(insert(IngestionError), rows)


def delete_ingestion_statistics(*, session: Session, dag_run_id: str) -> int:
    """Delete every statistics row of one run id, with its error rows; return how many files.

    Used by the demo-history command, whose rows all carry the run id `demo-history`.
    """
    deleted = session.execute(delete(IngestedFile).where(IngestedFile.dag_run_id == dag_run_id))
    return cast("CursorResult[Any]", deleted).rowcount  # DML: a CursorResult at run time
