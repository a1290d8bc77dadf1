"""The five steps of the `data_ingestion` DAG as plain functions; the DAG file only wires them.

Each step takes and returns JSON-safe dicts (Airflow passes them as XComs) and reads its settings
from `IngestionSettings`, so tests call the steps without Airflow.

save-statistics and send-alerts run in parallel, yet both concern one `ingested_files` row: the
statistics task stores it (alert_sent False when an alert is due, None when none is), and the
alert task stores it with alert_sent True once Teams accepted the card. Each is one upsert on the
row's key (file name, SHA-256 of its bytes) in db/statistics.py, which keeps a delivered alert
recorded: the row ends right in either order, a retried task stores nothing twice, and neither
does a later run that ingests the file again after a crash left its claim behind.

Each run first deletes the temporaries a killed writer left in the data folders
(`remove_orphan_files`).

A claimed file is released (its claim removed) only once both save-statistics and
split-and-save-data are done (`jobs.claim.finish_claim_step`): with the database down while the
statistics are stored, the file stays claimed, and after CLAIM_TIMEOUT_SECONDS a later run
recovers and ingests it again, writing its statistics row once and the same outputs.

validate-data and split-and-save-data read the file INGESTION_CHUNK_ROWS rows at a time: memory
is bounded by the chunk, whatever the file's size.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from core.files import file_sha256, remove_orphan_temporaries
from core.settings import IngestionSettings
from db.statistics import record_ingestion_statistics
from jobs.alerts import report_and_alert, report_url
from jobs.claim import ClaimedFile, claim_raw_file, finish_claim_step, recover_stale_claims
from jobs.splitting import split_good_bad_rows
from jobs.validation import ValidationOutcome, validate_customer_file

log = logging.getLogger(__name__)


def claim_next_file(run_id: str, settings: IngestionSettings | None = None) -> dict[str, Any] | None:
    """The `read-data` step: recover stale claims, then claim one raw file at random.

    Returns the claim as a dict for XCom, None when raw-data holds nothing to ingest.
    """
    settings = settings or IngestionSettings()
    remove_orphan_files(settings)
    recover_stale_claims(settings.raw_data_dir, settings.claims_dir, settings.claim_timeout_seconds)
    claimed = claim_raw_file(
        settings.raw_data_dir, settings.claims_dir, run_id, settle_seconds=settings.raw_file_settle_seconds,
    )
    if claimed is None:
        return None
    return {**claimed.to_dict(), "started_at": datetime.now(UTC).isoformat()}


def remove_orphan_files(settings: IngestionSettings) -> list[Path]:
    """Delete the temporaries a killed writer left in raw-data, good_data and bad_data.

    A write in progress is younger than CLAIM_TIMEOUT_SECONDS (longer than any honest run), so
    only hidden `*.tmp` files older than that go (core.files.remove_orphan_temporaries).
    """
    now, age = time.time(), settings.claim_timeout_seconds
    removed = [
        path
        for folder in (settings.raw_data_dir, settings.good_data_dir, settings.bad_data_dir)
        for path in remove_orphan_temporaries(folder, older_than_seconds=age, now=now)
    ]
    for path in removed:
        log.warning("removed %s, left half-written by a killed writer", path)
    return removed


def validate_claimed_file(claim: dict[str, Any]) -> dict[str, Any]:
    """The `validate-data` step; the claim goes on with the SHA-256 of the file's bytes, which
    identifies the file in the statistics whatever run ingests it (a recovered claim included)."""
    settings = IngestionSettings()
    claimed = ClaimedFile.from_dict(claim)
    claim = {**claim, "checksum": file_sha256(claimed.path)}
    outcome = validate_customer_file(
        claimed.path, file_name=claimed.original_name, chunk_rows=settings.ingestion_chunk_rows,
    )
    log.info(
        "%s: %d rows, %d valid, %d invalid, criticality %s, errors %s", outcome.file_name,
        outcome.rows, outcome.valid_rows, outcome.invalid_rows, outcome.criticality,
        {f"{t}:{c}": n for (t, c), n in outcome.error_counts.items()},
    )
    return {"claim": claim, "outcome": outcome.to_dict()}


def save_ingestion_statistics(
    validated: dict[str, Any], run_id: str, settings: IngestionSettings | None = None,
) -> int:
    """One ingested_files row and one ingestion_errors row per (error type, column). Never the rows.

    Returns the row's id; a retried or cleared task returns the same row, its counts not doubled.
    """
    settings = settings or IngestionSettings()
    outcome = ValidationOutcome.from_dict(validated["outcome"])
    alert_sent = False if outcome.has_problems else None
    file_id = _store_statistics(validated, run_id, settings, alert_sent=alert_sent)
    finish_claim_step(ClaimedFile.from_dict(validated["claim"]), "statistics")
    return file_id


def send_file_alerts(
    validated: dict[str, Any], run_id: str, settings: IngestionSettings | None = None,
) -> dict[str, Any]:
    """Build the report; alert Teams when the file has problems; record whether the alert went out."""
    settings = settings or IngestionSettings()
    outcome = ValidationOutcome.from_dict(validated["outcome"])
    webhook_url = settings.teams_webhook_url.get_secret_value() if settings.teams_webhook_url else None
    result = report_and_alert(
        outcome, run_id=run_id, reports_dir=settings.reports_dir,
        reports_base_url=settings.reports_base_url, webhook_url=webhook_url,
        attempts=settings.teams_attempts, backoff_seconds=settings.teams_backoff_seconds,
        timeout_seconds=settings.teams_timeout_seconds,
    )
    if result.alert_sent:
        _record_alert_delivered(validated, run_id, settings)
    return {"report_url": result.report_url, "alert_sent": result.alert_sent}


def split_and_save_rows(
    validated: dict[str, Any], settings: IngestionSettings | None = None,
) -> dict[str, Any]:
    """The `split-and-save-data` step: the rows to good_data and bad_data; the claimed file is
    released once its statistics are stored too (`jobs.claim.finish_claim_step`)."""
    settings = settings or IngestionSettings()
    claimed = ClaimedFile.from_dict(validated["claim"])
    result = split_good_bad_rows(
        claimed, ValidationOutcome.from_dict(validated["outcome"]),
        good_data_dir=settings.good_data_dir, bad_data_dir=settings.bad_data_dir,
        chunk_rows=settings.ingestion_chunk_rows, release=False,
    )
    finish_claim_step(claimed, "split")
    return result.to_dict()


def _record_alert_delivered(validated: dict[str, Any], run_id: str, settings: IngestionSettings) -> None:
    """Store the statistics row with the alert delivered, whether save-statistics ran yet or not."""
    try:
        _store_statistics(validated, run_id, settings, alert_sent=True)
    except SQLAlchemyError as exc:  # the alert went out; only its bookkeeping is missing
        log.warning("alert sent but not recorded in ingested_files: %s", exc)


def _store_statistics(
    validated: dict[str, Any], run_id: str, settings: IngestionSettings, *, alert_sent: bool | None,
) -> int:
    from db.session import session_scope

    outcome = ValidationOutcome.from_dict(validated["outcome"])
    with session_scope() as session:
        return record_ingestion_statistics(
            session=session, file_name=outcome.file_name, dag_run_id=run_id,
            started_at=datetime.fromisoformat(validated["claim"]["started_at"]),
            rows=outcome.rows, valid_rows=outcome.valid_rows, invalid_rows=outcome.invalid_rows,
            criticality=str(outcome.criticality), outcome=outcome.outcome,
            report_url=report_url(settings.reports_base_url, run_id, outcome.file_name),
            alert_sent=alert_sent,
            error_counts={(str(t), c): n for (t, c), n in outcome.error_counts.items()},
            checksum=validated["claim"].get("checksum"),
        )
