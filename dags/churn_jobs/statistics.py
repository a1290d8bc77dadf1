"""Ingestion statistics: one row per ingested file, one per (error type, column). Never the rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from db.models import IngestedFile, IngestionError


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
) -> int:
    """Store the statistics of one ingested file; returns its id.

    `error_counts` maps (error type, column or None for file-level errors) to a row count.
    `ingested_at` defaults to the database's now(); the demo-history command sets it.
    """
    ingested = IngestedFile(
        file_name=file_name, dag_run_id=dag_run_id, started_at=started_at,
        rows=rows, valid_rows=valid_rows, invalid_rows=invalid_rows,
        criticality=criticality, outcome=outcome, report_url=report_url, alert_sent=alert_sent,
    )
    if ingested_at is not None:
        ingested.ingested_at = ingested_at
    session.add(ingested)
    session.flush()
    session.add_all(
        IngestionError(
            ingested_file_id=ingested.id, error_type=error_type, column_name=column, count=count,
        )
        for (error_type, column), count in error_counts.items()
        if count > 0
    )
    return ingested.id
