"""What a file holds never runs in a report page, and a webhook's secret never reaches a log.

The pages are opened in Chromium in tests/e2e/test_report_browser.py; here the HTML and the logs.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from jobs.alerts import (
    AlertNotDeliveredError,
    build_alert_card,
    build_report,
    redact_url,
    send_alert,
)
from jobs.validation import ValidationOutcome, validate_customer_frame
from tests.dags.webhook_server import FakeTeamsWebhook, teams_webhook  # noqa: F401
from tests.factories import dataset_rows

RUN_ID = "manual__2026-11-24T09:00:00+00:00"
CELL_SCRIPT = "<script>window.__injected = 'cell'</script>"
COLUMN_SCRIPT = '<img src=x onerror="window.__injected = \'column\'">'
FILE_NAME_SCRIPT = "<svg onload=window.__injected='file'>.csv"
SIGNATURE = "Zm9yZ2VkLXNpZ25hdHVyZS0xMjM0NTY3ODkw"


def hostile_outcome() -> ValidationOutcome:
    """A file whose name, one cell and one column name are HTML that runs script."""
    frame = dataset_rows(20)
    frame.loc[3, "contract"] = CELL_SCRIPT
    frame[COLUMN_SCRIPT] = "x"
    return validate_customer_frame(frame, file_name=FILE_NAME_SCRIPT)


def build_hostile_report(reports_dir: Path) -> Path:
    """The Data Docs page of `hostile_outcome`, as the ingestion job writes it; returns its path."""
    outcome = hostile_outcome()
    link = build_report(outcome, run_id=RUN_ID, reports_dir=reports_dir)
    [page] = (reports_dir / "data_docs").rglob("*.html")
    assert link.exists()
    return page


def test_file_values_and_the_file_name_are_escaped_in_the_data_docs_page(tmp_path: Path) -> None:
    page = build_hostile_report(tmp_path).read_text(encoding="utf-8")
    for hostile in (CELL_SCRIPT, COLUMN_SCRIPT, FILE_NAME_SCRIPT):
        assert hostile not in page
    assert "&lt;script&gt;window.__injected" in page  # the value is shown, as text
    assert "&lt;svg onload=window.__injected=" in page


def test_the_card_link_page_of_an_unreadable_file_escapes_its_name(tmp_path: Path) -> None:
    from core.error_types import ErrorType

    outcome = ValidationOutcome(
        file_name=FILE_NAME_SCRIPT, rows=0, readable=False,
        file_errors=[(ErrorType.UNREADABLE_FILE, None)], detail=CELL_SCRIPT,
    )
    page = build_report(outcome, run_id=RUN_ID, reports_dir=tmp_path).read_text()
    assert FILE_NAME_SCRIPT not in page and CELL_SCRIPT not in page


def closed_port_url() -> str:
    """A Teams Workflows-like webhook URL on a local port nothing listens on, with a signature."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return (
        f"http://127.0.0.1:{port}/workflows/0a1b2c3d4e5f/triggers/manual/paths/invoke"
        f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIGNATURE}"
    )


def test_an_unreachable_webhook_url_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    url = closed_port_url()
    card = build_alert_card(hostile_outcome(), report_url="http://x/r.html")
    with caplog.at_level(logging.DEBUG), pytest.raises(AlertNotDeliveredError) as raised:
        send_alert(card, webhook_url=url, attempts=2, backoff_seconds=0.01)
    logged = caplog.text + str(raised.value)
    assert "alert attempt 1/2 failed: ConnectionError posting to http://127.0.0.1:" in caplog.text
    for secret in (SIGNATURE, "0a1b2c3d4e5f", "triggers/manual", url):
        assert secret not in logged


def test_redacted_urls_keep_only_scheme_and_host() -> None:
    assert redact_url("https://user:pw@hooks.example.invalid:443/workflows/x?sig=s") == (
        "https://hooks.example.invalid:443/..."
    )


def test_a_reachable_webhook_url_stays_out_of_debug_logs_too(
    caplog: pytest.LogCaptureFixture, teams_webhook: FakeTeamsWebhook,  # noqa: F811
) -> None:
    """urllib3 logs every request line at DEBUG: the signature must not ride along."""
    teams_webhook.statuses = [500, 202]
    url = f"{teams_webhook.url}/triggers/manual/paths/invoke?api-version=1&sig={SIGNATURE}"
    card = build_alert_card(hostile_outcome(), report_url="http://x/r.html")
    with caplog.at_level(logging.DEBUG):
        assert send_alert(card, webhook_url=url, attempts=2, backoff_seconds=0.01) is True
    assert len(teams_webhook.received) == 2
    assert "HTTP 500" in caplog.text  # the failed attempt is logged, without its URL
    assert SIGNATURE not in caplog.text and "triggers/manual" not in caplog.text
