"""The documentation's screenshots, taken from a running stack with Debian's Chromium.

    make run                                   (in one terminal: the stack)
    python -m scripts.take_screenshots [--out docs/screenshots] [--only webapp,airflow,mlflow,report]

Takes, at 1400x900: the webapp's form with a prediction and its reasons (`predict_form.png`), the
CSV upload with its results (`predict_upload.png`), past predictions (`past_predictions.png`), the
Airflow DAG list (`airflow_dags.png`), MLflow's registered model with its aliases
(`mlflow_registry.png`) and the newest Data Docs report of `REPORTS_DIR` (`data_docs_report.png`).
The URLs come from the settings `make run` uses (WEBAPP_PORT, AIRFLOW_API_PORT, MLFLOW_PORT,
REPORTS_BASE_URL), so the same command works against compose. A page that does not answer is
named and the script exits 1 after taking the others.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.settings import REPO_ROOT, AirflowSettings, MlflowServerSettings, ReportSettings, WebappSettings
from tests.browser import CHROMIUM, CHROMIUM_ARGS

OUT = REPO_ROOT / "docs" / "screenshots"
SAMPLE = REPO_ROOT / "tests" / "field_cases" / "ibm_telco_export_sample.csv"
VIEWPORT = {"width": 1400, "height": 900}
# Streamlit scrolls inside its own container (a full-page shot sees only the viewport): the form,
# its answer and the reasons fit in this one
WEBAPP_VIEWPORT = {"width": 1400, "height": 1900}


def _webapp(page: Any, out: Path) -> None:
    url = f"http://127.0.0.1:{WebappSettings().webapp_port}"
    page.goto(url)
    page.get_by_role("heading", name="Predict churn").wait_for(timeout=60_000)
    page.get_by_role("spinbutton", name="Tenure", exact=True).fill("2")
    page.get_by_role("spinbutton", name="Monthly charges", exact=True).fill("95")
    page.get_by_role("spinbutton", name="Total charges", exact=True).fill("190")
    page.get_by_role("button", name="Predict").click()
    page.locator("[data-testid='stMetric']").filter(has_text="Churn probability").wait_for(timeout=60_000)
    # the reasons table is drawn after the metrics: the shot waits for it
    page.locator("[data-testid='stTable']").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(out / "predict_form.png"), full_page=True)
    page.goto(url)
    page.get_by_role("tab", name="Many customers (CSV file)").click()
    page.locator("input[type='file']").set_input_files(str(SAMPLE))
    page.get_by_text("Download predictions (CSV)").wait_for(timeout=120_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(out / "predict_upload.png"), full_page=True)
    page.goto(f"{url}/past_predictions")
    page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "past_predictions.png"), full_page=True)


def _airflow(page: Any, out: Path) -> None:
    page.goto(f"http://127.0.0.1:{AirflowSettings().airflow_api_port}/dags")
    page.get_by_text("data_ingestion").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "airflow_dags.png"))


def _mlflow(page: Any, out: Path) -> None:
    page.goto(f"http://127.0.0.1:{MlflowServerSettings().mlflow_port}/#/models")
    page.get_by_text("champion").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    # MLflow 3 greets a new browser with a "new Model Registry UI" pop-up and an assistant panel:
    # both would cover the aliases
    page.keyboard.press("Escape")
    for name in ("Close", "Got it", "Dismiss"):
        for button in page.get_by_role("button", name=name).all():
            if button.is_visible():
                button.click()
    page.wait_for_timeout(1000)
    page.screenshot(path=str(out / "mlflow_registry.png"))


def _report(page: Any, out: Path) -> None:
    settings = ReportSettings()
    # Great Expectations' own validation pages (a refused empty file has only our short page)
    validations = settings.reports_dir / "data_docs" / "validations"
    reports = sorted(validations.rglob("*.html"), key=lambda p: p.stat().st_mtime)
    if not reports:
        raise RuntimeError(f"no Data Docs validation page in {validations} yet: wait for an ingestion")
    relative = reports[-1].relative_to(settings.reports_dir).as_posix()
    page.goto(f"{settings.reports_base_url.rstrip('/')}/{relative}")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "data_docs_report.png"))


SHOTS: dict[str, Callable[[Any, Path], None]] = {
    "webapp": _webapp, "airflow": _airflow, "mlflow": _mlflow, "report": _report,
}


def take(out: Path, only: list[str]) -> list[str]:
    """Take the screenshots named in `only` into `out`; returns what failed, each with its reason."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    failed = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for name in only:
                viewport = WEBAPP_VIEWPORT if name == "webapp" else VIEWPORT
                page = browser.new_page(viewport=viewport)  # type: ignore[arg-type]
                try:
                    SHOTS[name](page, out)
                    print(f"{name}: done")
                except Exception as error:  # one page down must not stop the others
                    failed.append(f"{name}: {error}".splitlines()[0])
                finally:
                    page.close()
        finally:
            browser.close()
    return failed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Take the docs' screenshots from a running stack.")
    parser.add_argument("--out", type=Path, default=OUT, help="folder to write the PNG files to")
    parser.add_argument("--only", default=",".join(SHOTS),
                        help=f"comma-separated subset of {','.join(SHOTS)}")
    args = parser.parse_args(argv)
    failed = take(args.out, [name for name in args.only.split(",") if name])
    if failed:
        sys.exit("not taken:\n" + "\n".join(failed))


if __name__ == "__main__":
    main()
