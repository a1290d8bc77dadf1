"""The run's report and the Teams alert: card fields, delivery, retries, and a link that opens."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobs.alerts import (
    AlertNotDeliveredError,
    build_alert_card,
    build_report,
    report_and_alert,
    report_url,
    send_alert,
)
from jobs.validation import ValidationOutcome, validate_customer_file, validate_customer_frame
from tests.api_server import start_api_server
from tests.dags.webhook_server import FakeTeamsWebhook, teams_webhook  # noqa: F401
from tests.factories import dataset_rows

BASE_URL = "http://reports.example/reports"
RUN_ID = "scheduled__2026-11-24T09:00:00+00:00"


@pytest.fixture(scope="module")
def mixed_outcome() -> ValidationOutcome:
    frame = dataset_rows(40)
    frame.loc[[1, 2, 3], "tenure"] = "-7"
    frame.loc[5, "contract"] = "Weekly"
    frame.loc[6, "monthly_charges"] = "lots"
    return validate_customer_frame(frame, file_name="customers_0042.csv")


def _card(message: dict[str, Any]) -> dict[str, Any]:
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    return attachment["content"]


def _facts(card: dict[str, Any]) -> dict[str, str]:
    return {f["title"]: f["value"] for block in card["body"] for f in block.get("facts", [])}


def test_the_card_carries_criticality_counts_per_type_and_column_and_the_link(
    mixed_outcome: ValidationOutcome,
) -> None:
    url = report_url(BASE_URL, RUN_ID, mixed_outcome.file_name)
    card = _card(build_alert_card(mixed_outcome, report_url=url, run_id=RUN_ID))
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    facts = _facts(card)
    assert facts["Criticality"] == "MEDIUM"  # 5 of 40 rows invalid: 12.5%
    assert facts["File"] == "customers_0042.csv"
    assert facts["Rows"] == "40 read, 35 valid, 5 invalid"
    assert facts["out_of_range · tenure"] == "3"
    assert facts["unknown_category · contract"] == "1"
    assert facts["wrong_type · monthly_charges"] == "1"
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the validation report", "url": url}]
    assert url.startswith(BASE_URL + "/")


def test_the_report_is_a_data_docs_page_behind_a_stable_link(
    tmp_path: Path, mixed_outcome: ValidationOutcome,
) -> None:
    link = build_report(mixed_outcome, run_id=RUN_ID, reports_dir=tmp_path)
    url = report_url(BASE_URL, RUN_ID, mixed_outcome.file_name)
    assert link == tmp_path / url.removeprefix(BASE_URL + "/")
    pages = list((tmp_path / "data_docs" / "validations").rglob("*.html"))
    assert len(pages) == 1
    page = pages[0].read_text()
    assert "expect_column_values_to_be_between" in page or "values must be" in page.lower()
    assert "tenure" in page
    assert (tmp_path / "data_docs" / "static" / "styles").is_dir()
    forward = link.read_text()
    assert "http-equiv=\"refresh\"" in forward
    target = forward.split('url=')[1].split('"')[0]
    assert (link.parent / httpx.URL(target).path).resolve() == pages[0].resolve()


def test_an_unreadable_file_gets_a_report_saying_why(tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"\x00\x01binary")
    outcome = validate_customer_file(broken)
    page = build_report(outcome, run_id=RUN_ID, reports_dir=tmp_path / "reports").read_text()
    assert "binary content" in page and "high" in page and "unreadable_file" in page


def test_an_accepted_alert_is_posted_once(teams_webhook: FakeTeamsWebhook, tmp_path: Path,  # noqa: F811
                                          mixed_outcome: ValidationOutcome) -> None:
    result = report_and_alert(
        mixed_outcome, run_id=RUN_ID, reports_dir=tmp_path, reports_base_url=BASE_URL,
        webhook_url=teams_webhook.url, backoff_seconds=0.01,
    )
    assert result.alert_sent is True
    [message] = teams_webhook.received
    assert _facts(_card(message))["Criticality"] == "MEDIUM"
    assert result.report_url == report_url(BASE_URL, RUN_ID, mixed_outcome.file_name)


def test_a_clean_file_gets_a_report_but_no_alert(teams_webhook: FakeTeamsWebhook, tmp_path: Path) -> None:  # noqa: F811
    outcome = validate_customer_frame(dataset_rows(10), file_name="clean.csv")
    result = report_and_alert(
        outcome, run_id=RUN_ID, reports_dir=tmp_path, reports_base_url=BASE_URL,
        webhook_url=teams_webhook.url,
    )
    assert result.alert_sent is None
    assert teams_webhook.received == []
    assert (tmp_path / result.report_url.removeprefix(BASE_URL + "/")).exists()


def test_a_failing_webhook_is_retried_until_it_accepts(teams_webhook: FakeTeamsWebhook,  # noqa: F811
                                                       mixed_outcome: ValidationOutcome) -> None:
    teams_webhook.statuses = [500, 503, 202]
    card = build_alert_card(mixed_outcome, report_url="http://x/r.html")
    assert send_alert(card, webhook_url=teams_webhook.url, attempts=3, backoff_seconds=0.01) is True
    assert len(teams_webhook.received) == 3


def test_a_webhook_that_keeps_failing_raises_after_every_attempt(teams_webhook: FakeTeamsWebhook,  # noqa: F811
                                                                 mixed_outcome: ValidationOutcome) -> None:
    teams_webhook.statuses = [500]
    card = build_alert_card(mixed_outcome, report_url="http://x/r.html")
    with pytest.raises(AlertNotDeliveredError, match="HTTP 500"):
        send_alert(card, webhook_url=teams_webhook.url, attempts=3, backoff_seconds=0.01)
    assert len(teams_webhook.received) == 3


def test_a_rejected_card_is_not_retried(teams_webhook: FakeTeamsWebhook,  # noqa: F811
                                        mixed_outcome: ValidationOutcome) -> None:
    teams_webhook.statuses = [400]
    card = build_alert_card(mixed_outcome, report_url="http://x/r.html")
    with pytest.raises(AlertNotDeliveredError, match="HTTP 400"):
        send_alert(card, webhook_url=teams_webhook.url, attempts=3, backoff_seconds=0.01)
    assert len(teams_webhook.received) == 1


def test_no_webhook_logs_the_alert_and_reports_it_not_sent(
    caplog: pytest.LogCaptureFixture, mixed_outcome: ValidationOutcome,
) -> None:
    card = build_alert_card(mixed_outcome, report_url="http://x/r.html")
    with caplog.at_level(logging.WARNING):
        assert send_alert(card, webhook_url=None) is False
    assert "TEAMS_WEBHOOK_URL is not set" in caplog.text
    assert "Criticality: MEDIUM" in caplog.text


def test_the_card_link_opens_through_the_api(database_url: str, tmp_path: Path,
                                             mixed_outcome: ValidationOutcome) -> None:
    reports_dir = tmp_path / "reports"
    base_url, stop = start_api_server(database_url, env={"REPORTS_DIR": str(reports_dir)})
    try:
        reports_base_url = f"{base_url}/reports"
        result = report_and_alert(
            mixed_outcome, run_id=RUN_ID, reports_dir=reports_dir, reports_base_url=reports_base_url,
            webhook_url=None,
        )
        link = httpx.get(result.report_url, timeout=10)
        assert link.status_code == 200 and "http-equiv" in link.text
        page = httpx.get(result.report_url, timeout=10, follow_redirects=True)
        target = link.text.split("url=")[1].split('"')[0]
        docs = httpx.get(httpx.URL(result.report_url).join(target), timeout=10)
        assert docs.status_code == 200
        assert "customers_0042.csv" in docs.text and "tenure" in docs.text
        assert page.status_code == 200
    finally:
        stop()
