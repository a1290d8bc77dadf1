"""The lifecycle loop end to end on a seeded concept drift: real MLflow, the real API following the
registry, real PostgreSQL, the label_ingestion and retrain_model DAGs run with `dag.test()`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.api_client import ChurnApiClient
from core.settings import RegistrySettings
from jobs.lifecycle import recent_decisions
from model.registry import CHALLENGER, CHAMPION, log_training_run, version_by_alias
from model.train import train
from scripts.concept_drift_scenario import ConceptDriftScenario
from tests.api_server import start_api_server
from tests.mlflow_server import mlflow_url, registry_settings  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_a_concept_drift_goes_from_labels_to_a_promoted_challenger_with_no_human_step(
    clean_db: str, registry_settings: RegistrySettings, run_dag: Callable[..., Any],  # noqa: F811
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LABELS_DIR", str(tmp_path / "labels"))
    monkeypatch.setenv("LABELS_BAD_DIR", str(tmp_path / "bad_labels"))
    train(out_dir=tmp_path / "artifacts")
    champion = log_training_run(tmp_path / "artifacts", alias=CHAMPION, settings=registry_settings)
    assert champion is not None
    api, stop = start_api_server(clean_db, env={
        "MLFLOW_TRACKING_URI": registry_settings.mlflow_tracking_uri or "",
        "MLFLOW_MODEL_NAME": registry_settings.mlflow_model_name, "MODEL_POLL_SECONDS": "0.5",
    })

    def ingest() -> None:
        result = run_dag("label_ingestion")
        assert result.task_states == {"ingest-labels": "success",
                                      "refresh-realized-performance": "success"}, result

    def retrain_job() -> None:
        result = run_dag("retrain_model")
        assert result.state == "success", result

    try:
        report = ConceptDriftScenario(ChurnApiClient(api), ingest=ingest, retrain_job=retrain_job).run()
    finally:
        stop()
    print("\n" + report.summary())

    promoted = version_by_alias(CHAMPION, registry_settings)
    assert promoted is not None and promoted.number > champion.number
    assert version_by_alias(CHALLENGER, registry_settings) is None
    assert (report.champion_before, report.champion_after) == (champion.model_version, promoted.model_version)
    assert report.gate == []  # promoted, no reason to refuse
    decisions = [(d["action"], d["automatic"], d["challenger"]) for d in recent_decisions(5)]
    assert decisions[:2] == [("promote", True, promoted.number), ("register", True, promoted.number)]
    assert report.f1_before is not None and report.f1_after is not None
    assert report.f1_after > report.f1_before + 0.05  # the new champion learned the drift
    assert list(report.stages) == ["serve-before", "retrain", "shadow", "gate", "serve-after"]
