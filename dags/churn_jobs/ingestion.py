"""The five steps of the `data_ingestion` DAG as plain functions; the DAG file only wires them.

Each step takes and returns JSON-safe dicts (Airflow passes them as XComs) and reads its settings
from `IngestionSettings`, so tests call the steps without Airflow.

save-statistics and send-alerts run in parallel, yet both concern one `ingested_files` row: the
statistics task inserts it (alert_sent False when an alert is due, None when none is), and the
alert task marks it sent once Teams accepted the card. Both take the same advisory lock; when
the alert task comes first it leaves a marker that the statistics task reads, so the row ends
right in either order.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dags.churn_jobs.alerts import report_and_alert, report_link_path, report_url
from dags.churn_jobs.claim import ClaimedFile, claim_raw_file, recover_stale_claims
from dags.churn_jobs.settings import IngestionSettings
from dags.churn_jobs.splitting import split_good_bad_rows
from dags.churn_jobs.statistics import record_ingestion_statistics
from dags.churn_jobs.validation import ValidationOutcome, validate_customer_file
from db.models import IngestedFile

log = logging.getLogger(__name__)


def read_data(run_id: str, settings: IngestionSettings | None = None) -> dict[str, Any] | None:
    """Recover stale claims, then claim one raw file at random; None when there is nothing to do."""
    settings = settings or IngestionSettings()
    recover_stale_claims(settings.raw_data_dir, settings.claims_dir, settings.claim_timeout_seconds)
    claimed = claim_raw_file(settings.raw_data_dir, settings.claims_dir, run_id)
    if claimed is None:
        return None
    return {**claimed.to_dict(), "started_at": datetime.now(UTC).isoformat()}


def validate_data(claim: dict[str, Any]) -> dict[str, Any]:
    claimed = ClaimedFile.from_dict(claim)
    outcome = validate_customer_file(claimed.path, file_name=claimed.original_name)
    log.info(
        "%s: %d rows, %d valid, %d invalid, criticality %s, errors %s", outcome.file_name,
        outcome.rows, outcome.valid_rows, outcome.invalid_rows, outcome.criticality,
        {f"{t}:{c}": n for (t, c), n in outcome.error_counts.items()},
    )
    return {"claim": claim, "outcome": outcome.to_dict()}


def save_statistics(validated: dict[str, Any], run_id: str, settings: IngestionSettings | None = None) -> int:
    """One ingested_files row and one ingestion_errors row per (error type, column). Never the rows."""
    from db.session import session_scope

    settings = settings or IngestionSettings()
    outcome = ValidationOutcome.from_dict(validated["outcome"])
    with session_scope() as session:
        _lock_ingestion(session, run_id, outcome.file_name)
        marker = _alert_marker(settings, run_id, outcome.file_name)
        stored_id = session.scalar(
            select(IngestedFile.id).where(
                IngestedFile.dag_run_id == run_id, IngestedFile.file_name == outcome.file_name,
            )
        )
        if stored_id is not None:  # a retried or cleared task whose first try committed
            return stored_id
        alert_sent = json.loads(marker.read_text()) if marker.exists() else (
            False if outcome.has_problems else None
        )
        ingested_id = record_ingestion_statistics(
            session=session, file_name=outcome.file_name, dag_run_id=run_id,
            started_at=datetime.fromisoformat(validated["claim"]["started_at"]),
            rows=outcome.rows, valid_rows=outcome.valid_rows, invalid_rows=outcome.invalid_rows,
            criticality=str(outcome.criticality), outcome=outcome.outcome,
            report_url=report_url(settings.reports_base_url, run_id, outcome.file_name),
            alert_sent=alert_sent,
            error_counts={(str(t), c): n for (t, c), n in outcome.error_counts.items()},
        )
    marker.unlink(missing_ok=True)
    return ingested_id


def send_alerts(
    validated: dict[str, Any], run_id: str, settings: IngestionSettings | None = None,
) -> dict[str, Any]:
    """Build the report; alert Teams when the file has problems; record whether the alert went out."""
    settings = settings or IngestionSettings()
    outcome = ValidationOutcome.from_dict(validated["outcome"])
    result = report_and_alert(
        outcome, run_id=run_id, reports_dir=settings.reports_dir,
        reports_base_url=settings.reports_base_url, webhook_url=settings.teams_webhook_url,
        attempts=settings.teams_attempts, backoff_seconds=settings.teams_backoff_seconds,
        timeout_seconds=settings.teams_timeout_seconds,
    )
    if result.alert_sent:
        _record_alert_delivered(settings, run_id, outcome.file_name)
    return {"report_url": result.report_url, "alert_sent": result.alert_sent}


def split_and_save_data(
    validated: dict[str, Any], settings: IngestionSettings | None = None,
) -> dict[str, Any]:
    settings = settings or IngestionSettings()
    result = split_good_bad_rows(
        ClaimedFile.from_dict(validated["claim"]), ValidationOutcome.from_dict(validated["outcome"]),
        good_data_dir=settings.good_data_dir, bad_data_dir=settings.bad_data_dir,
    )
    return result.to_dict()


def _record_alert_delivered(settings: IngestionSettings, run_id: str, file_name: str) -> None:
    """Mark the statistics row as alerted, or leave a marker for the statistics task to read."""
    from db.session import session_scope

    try:
        with session_scope() as session:
            _lock_ingestion(session, run_id, file_name)
            updated = session.execute(
                text(
                    "UPDATE ingested_files SET alert_sent = true"
                    " WHERE dag_run_id = :run AND file_name = :file"
                ),
                {"run": run_id, "file": file_name},
            ).rowcount
            if not updated:
                marker = _alert_marker(settings, run_id, file_name)
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text("true")
    except SQLAlchemyError as exc:  # the alert went out; only its bookkeeping is missing
        log.warning("alert sent but not recorded in ingested_files: %s", exc)


def _lock_ingestion(session: Session, run_id: str, file_name: str) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"{run_id}/{file_name}"})


def _alert_marker(settings: IngestionSettings, run_id: str, file_name: str) -> Path:
    link = settings.reports_dir / report_link_path(run_id, file_name)
    return link.with_name(f".{link.name}.alert-sent")
