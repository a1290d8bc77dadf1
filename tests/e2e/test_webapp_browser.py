"""The webapp in a real headless Chromium (Debian's), served by `streamlit run`, on the real API.

Screenshots of each page land in `screenshots/` (git-ignored); the README shows copies.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from core.settings import REPO_ROOT
from db import session as db_session
from db.predictions import create_predictions
from model.predictor import Predictor
from tests.api_server import api_url, free_port, start_server_process  # noqa: F401  (api_url: the real API, uvicorn)
from tests.factories import dataset_records
from tests.field_case_outcomes import IBM_SAMPLE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCREENSHOTS = REPO_ROOT / "screenshots"
WAIT_MS = 30_000
DATASET = REPO_ROOT / "data" / "telco_churn.csv"


def stored_predictions(where: str = "TRUE") -> list[dict]:
    with db_session.get_engine().connect() as connection:
        rows = connection.execute(text(f"SELECT * FROM predictions WHERE {where} ORDER BY id"))
        return [dict(row) for row in rows.mappings()]


@pytest.fixture(scope="module")
def webapp_url(api_url: str) -> Iterator[str]:  # noqa: F811
    """`streamlit run webapp/app.py` on a free port, talking to the test API."""
    host = urlsplit(api_url).hostname or ""
    port = free_port(host)
    env = {**os.environ, "API_URL": api_url, "API_TOKEN": ""}
    argv = [
        sys.executable, "-m", "streamlit", "run", "webapp/app.py", "--server.port", str(port),
        "--server.address", host, "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    base_url = f"http://{host}:{port}"
    stop = start_server_process("streamlit", argv, env, f"{base_url}/_stcore/health")
    try:
        yield base_url
    finally:
        stop()



@pytest.fixture
def page(browser, webapp_url: str, clean_db: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    yield tab
    context.close()


def screenshot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    """The whole page: Streamlit scrolls inside its main block, so the viewport grows to fit it."""
    SCREENSHOTS.mkdir(exist_ok=True)
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": int(height) + 40})
    page.wait_for_timeout(800)  # charts redraw at the new size
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def choose(page, label: str, option: str) -> None:  # type: ignore[no-untyped-def]
    """Pick `option` in the Streamlit selectbox labelled `label`."""
    box = page.locator("[data-testid='stSelectbox']").filter(
        has=page.locator("[data-testid='stWidgetLabel']", has_text=label),
    )
    box.click()
    page.get_by_role("option", name=option, exact=True).click()


def expect_grid_rows(page, count: int, index: int = -1) -> None:  # type: ignore[no-untyped-def]
    """Wait until the dataframe shows `count` rows (a rerun redraws it after the new data arrives)."""
    from playwright.sync_api import expect

    grid = page.locator("[data-testid='stDataFrame'] table[role='grid']").nth(index)
    expect(grid).to_have_attribute("aria-rowcount", str(count + 1))


def grid_column(page, name: str, index: int = -1) -> list[str]:  # type: ignore[no-untyped-def]
    """The visible cells of one column of a dataframe."""
    grid = page.locator("[data-testid='stDataFrame'] table[role='grid']").nth(index)
    grid.locator("tbody td").first.wait_for(state="attached")  # cells come after the first paint
    headers = [h.strip() for h in grid.locator("th").all_text_contents()]
    position = headers.index(name) + 1
    return grid.locator(f"tbody td[aria-colindex='{position}']").all_text_contents()


def metric(page, label: str) -> str:  # type: ignore[no-untyped-def]
    box = page.locator("[data-testid='stMetric']").filter(has_text=label).first
    return box.locator("[data-testid='stMetricValue']").inner_text().strip()


def test_fill_the_form_and_see_the_prediction(page, webapp_url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(webapp_url)
    page.get_by_role("heading", name="Predict churn").wait_for()
    page.get_by_role("spinbutton", name="Tenure", exact=True).fill("2")
    page.get_by_role("spinbutton", name="Monthly charges", exact=True).fill("95")
    page.get_by_role("spinbutton", name="Total charges", exact=True).fill("190")
    choose(page, "Internet service", "Fiber optic")
    choose(page, "Contract", "Month-to-month")
    page.get_by_role("textbox", name="Customer id", exact=True).fill("C-BROWSER-1")
    page.get_by_role("button", name="Predict").click()

    page.locator("[data-testid='stMetric']").filter(has_text="Churn probability").wait_for()
    label = metric(page, "Prediction")
    assert label in ("Churn", "Stays")
    probability = float(metric(page, "Churn probability").rstrip("%")) / 100
    stored = stored_predictions("source = 'webapp'")
    assert len(stored) == 1
    row = stored[0]
    assert (row["tenure"], row["monthly_charges"], row["customer_id"]) == (2, 95.0, "C-BROWSER-1")
    assert abs(stored[0]["churn_probability"] - probability) < 0.001
    assert grid_column(page, "prediction") == [label]
    why = page.locator("[data-testid='stTable']").first  # the reason codes, as stored
    assert why.locator("tbody tr").count() == 3
    assert [why.locator("tbody tr").nth(i).locator("td").first.inner_text().strip() for i in range(3)] == [
        row[f"reason_{slot}_feature"] for slot in (1, 2, 3)]
    screenshot(page, "predict_form")


def broken_upload(tmp_path: Path) -> Path:
    """50 customers of the dataset (with their `churn` label), rows 5, 20 and 40 of the file broken."""
    with DATASET.open(newline="") as source:
        rows = [row for _, row in zip(range(50), csv.DictReader(source), strict=False)]
    rows[3]["tenure"] = "-1"  # file row 5 (the header is row 1)
    rows[18]["contract"] = "Weekly"  # file row 20
    rows[38]["monthly_charges"] = "abc"  # file row 40
    path = tmp_path / "fifty_customers.csv"
    with path.open("w", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_upload_50_rows_with_3_broken_and_see_47_predictions(  # type: ignore[no-untyped-def]
    page, webapp_url: str, tmp_path: Path,
) -> None:
    page.goto(webapp_url)
    page.get_by_role("tab", name="Many customers (CSV file)").click()
    page.locator("input[type='file']").set_input_files(str(broken_upload(tmp_path)))

    summary = "fifty_customers.csv: 50 rows, 47 customers predicted, 3 invalid rows not sent."
    page.get_by_text(summary).wait_for()
    page.get_by_text("Download predictions (CSV)").wait_for()
    assert page.get_by_text("column holds known outcomes: dropped before predicting").count() == 1
    assert metric(page, "Customers predicted") == "47"
    expect_grid_rows(page, 3, 0)  # the invalid rows, named with their reason
    assert grid_column(page, "row", 0) == ["5", "20", "40"]
    assert grid_column(page, "column", 0) == ["tenure", "contract", "monthly_charges"]
    assert "below the minimum" in grid_column(page, "problem", 0)[0]
    expect_grid_rows(page, 47, 1)
    assert len(stored_predictions("source = 'webapp' AND file_name = 'fifty_customers.csv'")) == 47
    screenshot(page, "predict_upload")
    assert len(stored_predictions()) == 47  # resizing and redrawing the page posted nothing again


def test_upload_the_public_ibm_export_as_is_and_see_200_predictions(  # type: ignore[no-untyped-def]
    page, webapp_url: str,
) -> None:
    """tests/field_cases/ibm_telco_export_sample.csv as downloaded: its names and codings are aliases."""
    page.goto(webapp_url)
    page.get_by_role("tab", name="Many customers (CSV file)").click()
    page.locator("input[type='file']").set_input_files(str(IBM_SAMPLE))

    page.get_by_text(f"{IBM_SAMPLE.name}: 200 rows, 200 customers predicted.").wait_for()
    page.get_by_text("The file was read as the public IBM Telco churn export").wait_for()
    assert metric(page, "Customers predicted") == "200"
    stored = stored_predictions(f"source = 'webapp' AND file_name = '{IBM_SAMPLE.name}'")
    assert len(stored) == 200
    assert stored[0]["customer_id"] == "7590-VHVEG" and stored[0]["female"] == 1
    assert sum(1 for row in stored if row["total_charges"] is None) == 11


@pytest.fixture
def week_of_history(clean_db: str) -> dict[str, int]:
    """A week of predictions scored by the real model, stored through the API's storage function."""
    predictor = Predictor()
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    counts = {"webapp": 0, "scheduled": 0}
    offset = 0
    with db_session.session_scope() as session:
        for days_ago in range(7):
            for source, count in (("scheduled", 40 + 7 * (days_ago % 3)), ("webapp", 2 + days_ago % 4)):
                records = dataset_records(count, start=offset)
                offset += count
                scored = predictor.predict(records)
                create_predictions(
                    session=session, source=source, records=records, labels=[p.label for p in scored],
                    probabilities=[p.probability for p in scored], model_version=predictor.version,
                    file_name=f"good_{days_ago}.csv" if source == "scheduled" else None,
                    # the same time of day every day, earlier than now: all inside the last 7 days
                    created_at=midnight - timedelta(days=days_ago) + (now - midnight) * (count % 7 + 1) / 8,
                )
                counts[source] += count
    return counts


def test_filter_past_predictions_by_source(  # type: ignore[no-untyped-def]
    page, webapp_url: str, week_of_history: dict[str, int],
) -> None:
    total = sum(week_of_history.values())
    page.goto(webapp_url)
    page.get_by_role("link", name="Past predictions").click()
    page.get_by_role("heading", name="Past predictions").wait_for()
    page.get_by_text(f"Predictions 1-50 of {total}, newest first.").wait_for()
    assert metric(page, "Predictions") == str(total)
    assert metric(page, "Scheduled") == str(week_of_history["scheduled"])
    screenshot(page, "past_predictions")

    page.get_by_test_id("stRadioGroup").get_by_text("scheduled predictions", exact=True).click()
    scheduled = week_of_history["scheduled"]
    page.get_by_text(f"Predictions 1-50 of {scheduled}, newest first.").wait_for()
    expect_grid_rows(page, 50)
    assert set(grid_column(page, "source")) == {"scheduled"}
    assert metric(page, "Predictions") == str(scheduled)

    page.get_by_test_id("stRadioGroup").get_by_text("webapp", exact=True).click()  # not the chart legend
    webapp = week_of_history["webapp"]
    page.get_by_text(f"Predictions 1-{webapp} of {webapp}, newest first.").wait_for()
    expect_grid_rows(page, webapp)
    assert set(grid_column(page, "source")) == {"webapp"}
    assert len(grid_column(page, "source")) > 0


@pytest.fixture
def pixel_receiver() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that records every request: where a Markdown image would be fetched from."""
    import http.server
    import threading

    requests: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("content-type", "image/gif")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()


def test_a_file_named_like_a_markdown_image_is_shown_as_text_and_fetches_nothing(  # type: ignore[no-untyped-def]
    page, webapp_url: str, pixel_receiver: tuple[str, list[str]],
) -> None:
    receiver, requests = pixel_receiver
    name = f"![p]({receiver}/pixel).csv"
    with DATASET.open(newline="") as source:
        rows = [row for _, row in zip(range(3), csv.DictReader(source), strict=False)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    content = buffer.getvalue()
    page.goto(webapp_url)
    page.get_by_role("tab", name="Many customers (CSV file)").click()
    page.locator("input[type='file']").set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": content.encode()}],
    )
    page.get_by_text(f"{name}: 3 rows, 3 customers predicted.").wait_for()
    page.wait_for_timeout(1000)  # an image would have been requested by now
    assert page.locator(f"img[src*='{receiver}']").count() == 0
    assert requests == []
    assert len(stored_predictions("source = 'webapp'")) == 3
