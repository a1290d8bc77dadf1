"""The ingestion DAG with real Airflow (`dag.test()`), real PostgreSQL, real Great Expectations and a
real local HTTP server standing in for the Teams webhook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from core.settings import IngestionSettings
from db import session as db_session
from model.contract import IDENTIFIER
from tests.dags.conftest import DagRunResult
from tests.dags.ingestion_samples import write_csv
from tests.dags.webhook_server import FakeTeamsWebhook, teams_webhook  # noqa: F401
from tests.factories import dataset_rows

DAG_ID = "data_ingestion"
PARALLEL = {"save-statistics", "send-alerts", "split-and-save-data"}
ALL_TASKS = {"read-data", "validate-data", *PARALLEL}
# Airflow's own retries off: the webhook test asserts the failure of the first try
NO_RETRY = {"retries": 0}


@pytest.fixture
def settings(
    tmp_path: Path, clean_db: str, teams_webhook: FakeTeamsWebhook, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> IngestionSettings:
    """Empty folders of its own and the fake webhook; the tasks read them from the environment."""
    env = {
        "RAW_DATA_DIR": tmp_path / "raw-data", "GOOD_DATA_DIR": tmp_path / "good_data",
        "RAW_FILE_SETTLE_SECONDS": "0",  # the tests write whole files before each run
        "BAD_DATA_DIR": tmp_path / "bad_data", "REPORTS_DIR": tmp_path / "reports",
        "REPORTS_BASE_URL": "http://reports.example/reports", "TEAMS_WEBHOOK_URL": teams_webhook.url,
        "TEAMS_BACKOFF_SECONDS": "0.01",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    settings = IngestionSettings()
    settings.raw_data_dir.mkdir()
    return settings


def _statistics() -> list[dict[str, Any]]:
    with db_session.get_engine().connect() as conn:
        files = conn.execute(text("SELECT * FROM ingested_files ORDER BY id")).mappings().all()
        errors = conn.execute(text("SELECT * FROM ingestion_errors")).mappings().all()
    return [
        {**f, "errors": {(e["error_type"], e["column_name"]): e["count"] for e in errors
                         if e["ingested_file_id"] == f["id"]}}
        for f in files
    ]


def output(folder: Path, raw_name: str) -> Path:
    """The one output of `raw_name` in `folder`: named `<stem>.<checksum>.<suffix>` by the split."""
    stem, suffix = raw_name.rsplit(".", 1)
    [path] = folder.glob(f"{stem}.*.{suffix}")
    return path


def _succeeded(result: DagRunResult) -> None:
    assert result.task_states == dict.fromkeys(ALL_TASKS, "success"), result
    assert result.state == "success"


def _card_facts(message: dict[str, Any]) -> dict[str, str]:
    card = message["attachments"][0]["content"]
    return {f["title"]: f["value"] for block in card["body"] for f in block.get("facts", [])}


def test_read_and_validate_then_three_parallel_tasks_every_minute(dag_bag: Any) -> None:
    dag = dag_bag.get_dag(DAG_ID)
    assert dag is not None, dag_bag.import_errors
    assert dag.schedule == "* * * * *" and dag.catchup is False
    assert {t.task_id for t in dag.tasks} == ALL_TASKS
    assert dag.get_task("read-data").downstream_task_ids == {"validate-data"}
    assert dag.get_task("validate-data").downstream_task_ids == PARALLEL
    for task_id in PARALLEL:
        task = dag.get_task(task_id)
        assert task.upstream_task_ids == {"validate-data"}
        assert task.downstream_task_ids == set()


def test_an_empty_folder_skips_the_whole_run(run_dag: Any, settings: IngestionSettings,
                                             teams_webhook: FakeTeamsWebhook) -> None:  # noqa: F811
    result = run_dag(DAG_ID)
    assert result.task_states == dict.fromkeys(ALL_TASKS, "skipped"), result
    assert _statistics() == []
    assert teams_webhook.received == []


def test_a_clean_file_goes_to_good_data_with_statistics_and_no_alert(
    run_dag: Any, settings: IngestionSettings, teams_webhook: FakeTeamsWebhook,  # noqa: F811
) -> None:
    frame = dataset_rows(30)
    write_csv(frame, settings.raw_data_dir, "clean.csv")
    result = run_dag(DAG_ID)
    _succeeded(result)
    pd.testing.assert_frame_equal(pd.read_csv(output(settings.good_data_dir, "clean.csv"), dtype=str), frame)
    assert not settings.bad_data_dir.exists() or list(settings.bad_data_dir.iterdir()) == []
    [row] = _statistics()
    assert (row["file_name"], row["dag_run_id"], row["rows"], row["valid_rows"]) == (
        "clean.csv", result.run_id, 30, 30,
    )
    assert (row["criticality"], row["outcome"], row["errors"]) == ("none", "good", {})
    assert row["alert_sent"] is None
    assert teams_webhook.received == []
    assert (settings.reports_dir / row["report_url"].removeprefix(settings.reports_base_url + "/")).exists()
    assert list(settings.raw_data_dir.glob("*.csv")) == []


def test_a_mixed_file_is_split_counted_and_alerted_with_a_report_link(
    run_dag: Any, settings: IngestionSettings, teams_webhook: FakeTeamsWebhook,  # noqa: F811
) -> None:
    frame = dataset_rows(40)
    frame.loc[[2, 5, 8, 11], "tenure"] = "-1"
    frame.loc[20, "payment_method"] = "Bitcoin"
    write_csv(frame, settings.raw_data_dir, "mixed.csv")
    result = run_dag(DAG_ID)
    _succeeded(result)
    good = pd.read_csv(output(settings.good_data_dir, "mixed.csv"), dtype=str)
    bad = pd.read_csv(output(settings.bad_data_dir, "mixed.csv"), dtype=str)
    assert (len(good), len(bad)) == (35, 5)
    assert sorted([*good[IDENTIFIER], *bad[IDENTIFIER]]) == sorted(frame[IDENTIFIER])
    [row] = _statistics()
    assert (row["criticality"], row["outcome"], row["alert_sent"]) == ("medium", "mixed", True)
    assert row["errors"] == {("out_of_range", "tenure"): 4, ("unknown_category", "payment_method"): 1}
    [message] = teams_webhook.received
    facts = _card_facts(message)
    assert facts["Criticality"] == "MEDIUM"
    assert facts["out_of_range · tenure"] == "4"
    [action] = message["attachments"][0]["content"]["actions"]
    assert action["url"] == row["report_url"]
    assert action["url"].startswith(settings.reports_base_url + "/")
    assert (settings.reports_dir / action["url"].removeprefix(settings.reports_base_url + "/")).exists()


def test_an_all_bad_file_goes_to_bad_data_with_high_criticality(
    run_dag: Any, settings: IngestionSettings, teams_webhook: FakeTeamsWebhook,  # noqa: F811
) -> None:
    write_csv(dataset_rows(12).drop(columns=["contract"]), settings.raw_data_dir, "no_contract.csv")
    _succeeded(run_dag(DAG_ID))
    assert not settings.good_data_dir.exists() or list(settings.good_data_dir.iterdir()) == []
    assert len(pd.read_csv(output(settings.bad_data_dir, "no_contract.csv"))) == 12
    [row] = _statistics()
    assert (row["criticality"], row["outcome"], row["invalid_rows"]) == ("high", "bad", 12)
    assert row["errors"] == {("missing_column", "contract"): 12}
    assert _card_facts(teams_webhook.received[0])["Criticality"] == "HIGH"


def test_an_unreadable_file_is_quarantined_counted_and_alerted(
    run_dag: Any, settings: IngestionSettings, teams_webhook: FakeTeamsWebhook,  # noqa: F811
) -> None:
    content = "customer_id;tenure\nC1;3\n".encode("utf-16-le")  # UTF-16 without its BOM
    (settings.raw_data_dir / "utf16.csv").write_bytes(content)
    _succeeded(run_dag(DAG_ID))
    assert output(settings.bad_data_dir, "utf16.csv").read_bytes() == content
    [row] = _statistics()
    assert (row["rows"], row["criticality"], row["outcome"]) == (0, "high", "unreadable")
    assert row["errors"] == {("unreadable_file", None): 1}
    assert _card_facts(teams_webhook.received[0])["unreadable_file · whole file"] == "1"


def test_a_failing_webhook_fails_send_alerts_only(
    run_dag: Any, settings: IngestionSettings, teams_webhook: FakeTeamsWebhook,  # noqa: F811
) -> None:
    teams_webhook.statuses = [500]
    frame = dataset_rows(20)
    frame.loc[0, "tenure"] = "-1"
    write_csv(frame, settings.raw_data_dir, "alert_fails.csv")
    result = run_dag(DAG_ID, **NO_RETRY)
    assert result.task_states == {
        "read-data": "success", "validate-data": "success", "save-statistics": "success",
        "split-and-save-data": "success", "send-alerts": "failed",
    }, result
    assert result.state == "failed"
    assert len(teams_webhook.received) == IngestionSettings().teams_attempts  # retried, then gave up
    [row] = _statistics()
    assert row["alert_sent"] is False
    assert len(pd.read_csv(output(settings.good_data_dir, "alert_fails.csv"))) == 19
