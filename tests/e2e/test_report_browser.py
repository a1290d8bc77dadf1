"""Report pages in Debian's Chromium: a script in a customer file never runs.

The Data Docs page of a file whose name, one cell and one column name are HTML that runs
script (tests/dags/test_report_safety.py builds it as the ingestion job does) is opened twice:
from disk, where only the escaping protects the reader, and through the API, which adds a
Content-Security-Policy that stops any script even in a page that holds one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from api.reports import REPORT_CONTENT_SECURITY_POLICY
from jobs.alerts import report_link_path
from tests.api_server import start_api_server
from tests.dags.test_report_safety import CELL_SCRIPT, FILE_NAME_SCRIPT, RUN_ID, build_hostile_report

pytestmark = [pytest.mark.e2e, pytest.mark.slow]




def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    """The page at `url` once loaded, and the dialogs it tried to open."""
    context = browser.new_context()
    # the CDN scripts and styles of Data Docs cannot load here (no internet): do not wait for them
    context.route("http*://**", lambda route: route.continue_() if "127.0.0.1" in route.request.url
                  else route.abort())
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(url, wait_until="load")
    page.wait_for_timeout(300)
    return page, dialogs


def test_a_script_in_a_cell_or_a_file_name_does_not_run_in_the_report(browser: Any, tmp_path: Path) -> None:
    page_path = build_hostile_report(tmp_path / "reports")
    page, dialogs = open_page(browser, page_path.as_uri())
    assert page.evaluate("typeof window.__injected") == "undefined"
    assert dialogs == []
    text = page.inner_text("body")
    assert CELL_SCRIPT in text  # shown to the reader as the text it is
    assert FILE_NAME_SCRIPT in text
    page.context.close()


def test_reports_served_by_the_api_run_no_script(browser: Any, database_url: str, tmp_path: Path) -> None:
    reports_dir = tmp_path / "reports"
    build_hostile_report(reports_dir)
    planted = reports_dir / "ingestion" / "planted.html"  # a page that does hold a script
    planted.write_text("<html><body><p id=p>page</p><script>window.__injected = 'inline'</script>"
                       "<img src=x onerror=\"window.__injected = 'handler'\"></body></html>")
    base_url, stop = start_api_server(database_url, env={"REPORTS_DIR": str(reports_dir)})
    try:
        served = httpx.get(f"{base_url}/reports/ingestion/planted.html", timeout=10)
        assert served.headers["content-security-policy"] == REPORT_CONTENT_SECURITY_POLICY
        assert "script-src 'none'" in served.headers["content-security-policy"]
        assert served.headers["x-content-type-options"] == "nosniff"
        page, dialogs = open_page(browser, f"{base_url}/reports/ingestion/planted.html")
        assert page.inner_text("#p") == "page"
        assert page.evaluate("typeof window.__injected") == "undefined"
        page.context.close()
        # the alert link of the hostile file forwards to its Data Docs page, under the same policy
        link = f"{base_url}/reports/{report_link_path(RUN_ID, FILE_NAME_SCRIPT)}"
        page, dialogs = open_page(browser, link)
        page.wait_for_url("**/data_docs/**")
        assert page.evaluate("typeof window.__injected") == "undefined" and dialogs == []
        assert CELL_SCRIPT in page.inner_text("body")
        page.context.close()
    finally:
        stop()
