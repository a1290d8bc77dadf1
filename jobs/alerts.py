"""The report of a run (Great Expectations Data Docs) and the Teams alert that links to it.

Reports land in REPORTS_DIR, which the API serves at REPORTS_BASE_URL:
- `data_docs/`: the Data Docs site; one validation page per ingested file.
- `ingestion/<run>/<file>.html`: the stable link of one ingestion, known before the report is
  built (so save-statistics, which runs in parallel, records the same URL). For a readable file
  it forwards to the Data Docs page; for an unreadable file (nothing to validate) it is the
  report itself and says why the file could not be read.

The alert is an Adaptive Card 1.4 in the envelope a Teams Workflows webhook expects
(Office 365 connectors and their MessageCard format are retired, hence no pymsteams); the
webhook answers 202 (or 200) when it accepted the message.
"""

from __future__ import annotations

import html
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlparse

import requests

from core.files import write_atomic
from jobs.validation import Criticality, ValidationOutcome

log = logging.getLogger(__name__)

DOCS_SITE_NAME = "ingestion_reports"
DOCS_FOLDER = "data_docs"
LINKS_FOLDER = "ingestion"
ACCEPTED_STATUSES = (200, 202)
CARD_COLORS = {
    Criticality.HIGH: "Attention", Criticality.MEDIUM: "Warning",
    Criticality.LOW: "Accent", Criticality.NONE: "Good",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class _RedactRequestTargets(logging.Filter):
    """urllib3 logs each request line at DEBUG (`"POST /workflows/...?sig=... HTTP/1.1" 202`):
    a Teams webhook's path and query are its secret, so the request target becomes `/...`."""

    _REQUEST_LINE = re.compile(r'"([A-Z]+) (\S+) (HTTP/[0-9.]+)"')

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._REQUEST_LINE.sub(r'"\1 /... \3"', message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactRequestTargets())


class AlertNotDeliveredError(RuntimeError):
    """The Teams webhook did not accept the card after every attempt."""


@dataclass(frozen=True)
class AlertResult:
    report_url: str
    alert_sent: bool | None  # None: nothing to alert about; False: not delivered (no webhook)


def report_link_path(run_id: str, file_name: str) -> str:
    """Path of the run's stable report link, relative to REPORTS_DIR (and to REPORTS_BASE_URL)."""
    return f"{LINKS_FOLDER}/{_UNSAFE.sub('-', run_id)}/{_UNSAFE.sub('-', file_name)}.html"


def report_url(reports_base_url: str, run_id: str, file_name: str) -> str:
    return f"{reports_base_url.rstrip('/')}/{quote(report_link_path(run_id, file_name))}"


def build_report(outcome: ValidationOutcome, *, run_id: str, reports_dir: Path) -> Path:
    """Write the run's report (Data Docs page, or the file-level page) and its stable link."""
    link = reports_dir / report_link_path(run_id, outcome.file_name)
    if outcome.ge_result is None:
        write_atomic({link: _file_level_page(outcome).encode()})
        return link
    docs_page = build_data_docs_page(outcome.ge_result, run_id=run_id, file_name=outcome.file_name,
                                     reports_dir=reports_dir)
    target = os.path.relpath(docs_page, link.parent)
    write_atomic({link: _forward_page(quote(target), outcome.file_name).encode()})
    return link


def build_data_docs_page(
    ge_result: Mapping[str, Any], *, run_id: str, file_name: str, reports_dir: Path,
) -> Path:
    """Render one validation result into the Data Docs site under REPORTS_DIR; returns its page."""
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import (
        expectationSuiteValidationResultSchema,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    # Great Expectations renders cell values, column names and the run name into the page raw:
    # a cell or a file name holding `<script>` would run in the browser of whoever opens the
    # alert link. Every string of the result is HTML-escaped before it reaches the renderer.
    result = expectationSuiteValidationResultSchema.load(escape_for_html(dict(ge_result)))
    context = gx.get_context(mode="ephemeral")
    context.add_data_docs_site(DOCS_SITE_NAME, {
        "class_name": "SiteBuilder",
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(reports_dir / DOCS_FOLDER),
        },
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    run_time = (ge_result.get("meta") or {}).get("run_id", {}).get("run_time")
    key = ValidationResultIdentifier(
        ExpectationSuiteIdentifier(name=result.suite_name),
        RunIdentifier(run_name=_UNSAFE.sub("-", run_id), run_time=run_time),
        _UNSAFE.sub("-", file_name),
    )
    # the page's "Run Name" says which file of which DAG run it is about
    result.meta["run_id"] = RunIdentifier(
        run_name=html.escape(f"{file_name} ({run_id})"), run_time=run_time,
    )
    context.validation_results_store.set(key, result)
    # no index: an ephemeral context knows only this result, and rebuilding the index would
    # drop the links to (and clean away) every earlier report
    context.build_data_docs(site_names=[DOCS_SITE_NAME], resource_identifiers=[key], build_index=False)
    [site] = context.get_docs_sites_urls(resource_identifier=key, site_name=DOCS_SITE_NAME)
    return Path(unquote(urlparse(site["site_url"]).path))


def escape_for_html(value: Any) -> Any:
    """`value` with every string in it (keys included) HTML-escaped: `<` -> `&lt;`, quotes too."""
    if isinstance(value, str):
        return html.escape(value)
    if isinstance(value, Mapping):
        return {escape_for_html(k): escape_for_html(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escape_for_html(item) for item in value]
    return value


def redact_url(url: str) -> str:
    """A URL fit for a log line: scheme and host only (a webhook's path and query are its secret).

    `https://hooks.example.invalid:443/workflows/abc/triggers/manual/paths/invoke?sig=SECRET` ->
    `https://hooks.example.invalid:443/...`
    """
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/..." if parts.netloc else "(a URL)"


def _without_secret(text: str, url: str) -> str:
    """`text` (an exception's message) with the URL and each of its secret parts replaced."""
    parts = urlparse(url)
    secrets = [url, parts.path, parts.query, unquote(parts.path), unquote(parts.query)]
    secrets += [value for _, value in parse_qsl(parts.query)]
    for secret in sorted({s for s in secrets if len(s) > 1}, key=len, reverse=True):
        text = text.replace(secret, "...")
    return text.replace(url, redact_url(url))


def build_alert_card(
    outcome: ValidationOutcome, *, report_url: str, run_id: str | None = None,
) -> dict[str, Any]:
    """The Teams Workflows message: an Adaptive Card 1.4 with criticality, counts and the report link."""
    facts = [
        {"title": "File", "value": outcome.file_name},
        {"title": "Criticality", "value": str(outcome.criticality).upper()},
        {"title": "Rows", "value": f"{outcome.rows} read, {outcome.valid_rows} valid, "
                                   f"{outcome.invalid_rows} invalid"},
    ]
    if run_id:
        facts.append({"title": "Run", "value": run_id})
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True,
            "color": CARD_COLORS[outcome.criticality],
            "text": f"Data quality {outcome.criticality}: {outcome.file_name}",
        },
        {"type": "FactSet", "facts": facts},
    ]
    if outcome.detail:
        body.append({"type": "TextBlock", "text": outcome.detail, "wrap": True, "isSubtle": True})
    body.append({"type": "TextBlock", "text": "Errors (rows per type and column)", "weight": "Bolder"})
    body.append({"type": "FactSet", "facts": [
        {"title": f"{error_type} · {column or 'whole file'}", "value": str(count)}
        for (error_type, column), count in sorted(outcome.error_counts.items(), key=lambda kv: -kv[1])
    ]})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": "Open the validation report", "url": report_url}],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                         "content": card}],
    }


def build_model_refusal_card(
    *, title: str, alias: str, number: int | None, model_version: str, reason: str, detail: str,
    at: datetime, run_id: str | None, what_now: str,
) -> dict[str, Any]:
    """The Teams Workflows message of a model version refused at admission (model/admission.py):
    an Adaptive Card 1.4 naming the alias, the version, the reason and the sentence saying why.
    Sent by the API (a version it does not serve) and by the promotion gate (a challenger it rejects)."""
    label = "local artifacts" if number is None else f"registry version {number}"
    facts = [
        {"title": "Alias", "value": alias},
        {"title": "Version", "value": f"{label} ({model_version})"},
        {"title": "Reason", "value": reason},
        {"title": "Refused at", "value": at.isoformat(timespec="seconds")},
    ]
    if run_id:
        facts.append({"title": "Training run", "value": run_id})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": [
            {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True, "color": "Attention",
             "text": title},
            {"type": "FactSet", "facts": facts},
            {"type": "TextBlock", "text": detail, "wrap": True, "isSubtle": True},
            {"type": "TextBlock", "wrap": True, "text": what_now},
        ],
    }
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}


def send_alert(
    message: Mapping[str, Any], *, webhook_url: str | None, attempts: int = 3,
    backoff_seconds: float = 1.0, timeout_seconds: float = 10.0,
) -> bool:
    """Post the card; True once accepted, False when no webhook is configured (logged, not a failure).

    Connection errors, 429 and 5xx are retried with a doubling pause; any other answer, or the
    last failed attempt, raises AlertNotDeliveredError so that the task fails visibly.
    """
    if not webhook_url:
        log.warning("TEAMS_WEBHOOK_URL is not set: alert not sent:\n%s", _card_summary(message))
        return False
    problem = ""
    for attempt in range(1, attempts + 1):
        try:
            response = requests.post(webhook_url, json=message, timeout=timeout_seconds)
        except requests.RequestException as exc:
            # requests puts the whole URL (the webhook's signature included) in its messages
            problem = f"{type(exc).__name__} posting to {redact_url(webhook_url)}: " + _without_secret(
                str(exc), webhook_url,
            )
        else:
            if response.status_code in ACCEPTED_STATUSES:
                log.info("alert accepted by Teams (HTTP %d)", response.status_code)
                return True
            problem = f"HTTP {response.status_code}: " + _without_secret(response.text[:200], webhook_url)
            if response.status_code != 429 and response.status_code < 500:
                break  # the request itself is wrong: retrying cannot help
        log.warning("alert attempt %d/%d failed: %s", attempt, attempts, problem)
        if attempt < attempts:
            time.sleep(backoff_seconds * 2 ** (attempt - 1))
    raise AlertNotDeliveredError(f"Teams webhook did not accept the alert: {problem}")


def report_and_alert(
    outcome: ValidationOutcome, *, run_id: str, reports_dir: Path, reports_base_url: str,
    webhook_url: str | None, attempts: int = 3, backoff_seconds: float = 1.0,
    timeout_seconds: float = 10.0,
) -> AlertResult:
    """Build the report; when the file has problems, alert Teams with its link."""
    build_report(outcome, run_id=run_id, reports_dir=reports_dir)
    url = report_url(reports_base_url, run_id, outcome.file_name)
    if not outcome.has_problems:
        return AlertResult(report_url=url, alert_sent=None)
    sent = send_alert(
        build_alert_card(outcome, report_url=url, run_id=run_id), webhook_url=webhook_url,
        attempts=attempts, backoff_seconds=backoff_seconds, timeout_seconds=timeout_seconds,
    )
    return AlertResult(report_url=url, alert_sent=sent)


def _card_summary(message: Mapping[str, Any]) -> str:
    card = message["attachments"][0]["content"]
    lines = [card["body"][0]["text"]]
    for block in card["body"]:
        lines.extend(f"  {f['title']}: {f['value']}" for f in block.get("facts", []))
    lines.extend(f"  {a['title']}: {a['url']}" for a in card.get("actions", []))
    return "\n".join(lines)


def _forward_page(target: str, file_name: str) -> str:
    title = html.escape(f"Validation report: {file_name}")
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta http-equiv="refresh" content="0; url={html.escape(target)}"></head>'
        f'<body><a href="{html.escape(target)}">{title}</a></body></html>\n'
    )


def _file_level_page(outcome: ValidationOutcome) -> str:
    title = html.escape(f"Validation report: {outcome.file_name}")
    errors = "".join(f"<li>{html.escape(str(t))}</li>" for t, _ in outcome.file_errors)
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head><body>'
        f"<h1>{title}</h1><p>Criticality: <b>{html.escape(str(outcome.criticality))}</b></p>"
        f"<p>The whole file could not be ingested: {html.escape(outcome.detail)}</p><ul>{errors}</ul>"
        "<p>It was moved, unchanged, to bad_data.</p></body></html>\n"
    )
