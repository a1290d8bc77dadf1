"""save-statistics and send-alerts against the real database: one row per file, one per error kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.settings import IngestionSettings
from db.models import IngestedFile, IngestionError
from db.session import session_scope
from jobs import ingestion
from tests.dags.ingestion_samples import write_csv
from tests.dags.webhook_server import FakeTeamsWebhook, teams_webhook  # noqa: F401
from tests.factories import dataset_rows

RUN_ID = "manual__2026-11-24T09:30:00+00:00"


@pytest.fixture
def settings(tmp_path: Path, teams_webhook: FakeTeamsWebhook) -> IngestionSettings:  # noqa: F811
    return IngestionSettings(
        raw_data_dir=tmp_path / "raw-data", good_data_dir=tmp_path / "good_data",
        bad_data_dir=tmp_path / "bad_data", reports_dir=tmp_path / "reports",
        reports_base_url="http://reports.example/reports", teams_webhook_url=teams_webhook.url,
        teams_backoff_seconds=0.01, raw_file_settle_seconds=0,  # the tests write whole files
    )


def _validated(settings: IngestionSettings, frame_or_bytes: Any, name: str) -> dict[str, Any]:
    if isinstance(frame_or_bytes, bytes):
        settings.raw_data_dir.mkdir(parents=True, exist_ok=True)
        (settings.raw_data_dir / name).write_bytes(frame_or_bytes)
    else:
        write_csv(frame_or_bytes, settings.raw_data_dir, name)
    claim = ingestion.claim_next_file(RUN_ID, settings)
    assert claim is not None
    return ingestion.validate_claimed_file(claim)


def _error_rows() -> list[tuple[str, str | None, int]]:
    """Every ingestion_errors row as stored (a dict would hide a doubled row)."""
    with session_scope() as session:
        return sorted(
            (e.error_type, e.column_name, e.count) for e in session.scalars(select(IngestionError))
        )


def _stored() -> tuple[IngestedFile, dict[tuple[str, str | None], int]]:
    with session_scope() as session:
        [row] = session.scalars(select(IngestedFile)).all()
        errors = {
            (e.error_type, e.column_name): e.count
            for e in session.scalars(select(IngestionError).where(IngestionError.ingested_file_id == row.id))
        }
        return row, errors


def _mixed() -> Any:
    frame = dataset_rows(20)
    frame.loc[[0, 1], "tenure"] = "-1"
    frame.loc[2, "contract"] = "Weekly"
    return frame


@pytest.mark.parametrize("alert_first", [False, True], ids=["statistics-first", "alert-first"])
def test_a_mixed_file_stores_its_counts_and_the_alert_delivery_in_either_order(
    clean_db: str, settings: IngestionSettings, teams_webhook: FakeTeamsWebhook, alert_first: bool,  # noqa: F811
) -> None:
    validated = _validated(settings, _mixed(), "mixed.csv")
    if alert_first:
        alert = ingestion.send_file_alerts(validated, RUN_ID, settings)
        ingestion.save_ingestion_statistics(validated, RUN_ID, settings)
    else:
        ingestion.save_ingestion_statistics(validated, RUN_ID, settings)
        alert = ingestion.send_file_alerts(validated, RUN_ID, settings)
    row, errors = _stored()
    assert (row.file_name, row.dag_run_id, row.rows, row.valid_rows, row.invalid_rows) == (
        "mixed.csv", RUN_ID, 20, 17, 3,
    )
    assert (row.criticality, row.outcome, row.alert_sent) == ("medium", "mixed", True)
    assert row.report_url == alert["report_url"]
    assert errors == {("out_of_range", "tenure"): 2, ("unknown_category", "contract"): 1}
    assert len(teams_webhook.received) == 1
    assert not any(p.name.endswith(".alert-sent") for p in settings.reports_dir.rglob(".*"))


def test_without_a_webhook_the_alert_is_recorded_as_not_sent(
    clean_db: str, settings: IngestionSettings,
) -> None:
    settings.teams_webhook_url = None
    validated = _validated(settings, _mixed(), "mixed.csv")
    assert ingestion.send_file_alerts(validated, RUN_ID, settings)["alert_sent"] is False
    ingestion.save_ingestion_statistics(validated, RUN_ID, settings)
    row, _ = _stored()
    assert row.alert_sent is False


def test_a_clean_file_needs_no_alert_and_has_no_error_rows(
    clean_db: str, settings: IngestionSettings, teams_webhook: FakeTeamsWebhook,  # noqa: F811
) -> None:
    validated = _validated(settings, dataset_rows(15), "clean.csv")
    ingestion.save_ingestion_statistics(validated, RUN_ID, settings)
    assert ingestion.send_file_alerts(validated, RUN_ID, settings)["alert_sent"] is None
    row, errors = _stored()
    assert (row.rows, row.valid_rows, row.criticality, row.outcome) == (15, 15, "none", "good")
    assert row.alert_sent is None
    assert errors == {}
    assert teams_webhook.received == []


def test_an_unreadable_file_is_counted_as_one_file_level_error(
    clean_db: str, settings: IngestionSettings,
) -> None:
    validated = _validated(settings, b"\x00\xff\x00 not a csv", "junk.csv")
    ingestion.save_ingestion_statistics(validated, RUN_ID, settings)
    row, errors = _stored()
    assert (row.rows, row.criticality, row.outcome) == (0, "high", "unreadable")
    assert errors == {("unreadable_file", None): 1}


def test_a_retried_save_statistics_stores_the_file_once(
    clean_db: str, settings: IngestionSettings,
) -> None:
    # the first try committed, then the task was retried (worker lost) or cleared in the UI
    validated = _validated(settings, _mixed(), "mixed.csv")
    first = ingestion.save_ingestion_statistics(validated, RUN_ID, settings)
    assert ingestion.save_ingestion_statistics(validated, RUN_ID, settings) == first
    row, errors = _stored()  # exactly one ingested_files row
    assert row.id == first
    assert errors == {("out_of_range", "tenure"): 2, ("unknown_category", "contract"): 1}


def test_statistics_retried_around_a_delivered_alert_leave_one_row_with_counts_once(
    clean_db: str, settings: IngestionSettings, teams_webhook: FakeTeamsWebhook,  # noqa: F811
) -> None:
    """The alert lands first, save-statistics then runs three times (retries, a cleared task), the
    alert task is retried too: one row, error rows not doubled, the delivery kept, no marker file."""
    validated = _validated(settings, _mixed(), "mixed.csv")
    ingestion.send_file_alerts(validated, RUN_ID, settings)
    ids = {ingestion.save_ingestion_statistics(validated, RUN_ID, settings) for _ in range(3)}
    ingestion.send_file_alerts(validated, RUN_ID, settings)
    assert ingestion.save_ingestion_statistics(validated, RUN_ID, settings) in ids and len(ids) == 1

    row, _ = _stored()  # exactly one ingested_files row
    assert (row.rows, row.valid_rows, row.invalid_rows, row.alert_sent) == (20, 17, 3, True)
    assert _error_rows() == [("out_of_range", "tenure", 2), ("unknown_category", "contract", 1)]
    assert len(teams_webhook.received) == 2  # each send-alerts try posted; the row counts it once
    assert [p for p in settings.reports_dir.rglob("*") if p.name.startswith(".")] == []
