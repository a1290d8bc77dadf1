"""Training logs a run and registers versions in a real MLflow server; aliases; loading a version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from core.settings import RegistrySettings
from model.predictor import Predictor
from model.registry import (
    CHALLENGER,
    CHAMPION,
    delete_alias,
    download_version,
    log_training_run,
    version_by_alias,
)
from model.train import METADATA_FILE, train
from tests.factories import customer_record


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifacts")
    train(out_dir=out)  # local artifacts only: the tests register them explicitly
    return out


def test_without_a_tracking_uri_training_registers_nothing(trained: Path) -> None:
    assert log_training_run(trained, settings=RegistrySettings(mlflow_tracking_uri=None)) is None
    assert json.loads((trained / METADATA_FILE).read_text())["dataset_sha256"]


def test_first_version_is_champion_then_challenger(
    trained: Path, registry_settings: RegistrySettings,
) -> None:
    first = log_training_run(trained, settings=registry_settings)
    second = log_training_run(trained, settings=registry_settings)
    assert first is not None and second is not None
    assert (first.number, second.number) == (1, 2)
    metadata = json.loads((trained / METADATA_FILE).read_text())
    champion, challenger = (version_by_alias(a, registry_settings) for a in (CHAMPION, CHALLENGER))
    assert champion is not None and champion.number == 1
    assert challenger is not None and challenger.number == 2
    assert champion.model_version == metadata["model_version"]
    delete_alias(CHALLENGER, registry_settings)
    assert version_by_alias(CHALLENGER, registry_settings) is None
    delete_alias(CHALLENGER, registry_settings)  # absent: no error


def test_the_run_holds_parameters_metrics_baseline_and_dataset_hash(
    trained: Path, registry_settings: RegistrySettings,
) -> None:
    registered = log_training_run(trained, settings=registry_settings)
    assert registered is not None
    metadata = json.loads((trained / METADATA_FILE).read_text())
    mlflow = MlflowClient(registry_settings.mlflow_tracking_uri)
    run = mlflow.get_run(registered.run_id)
    assert run.data.params["C"] == "1.0"
    assert run.data.params["training_rows"] == str(metadata["training_rows"])
    assert run.data.metrics["holdout_f1"] == pytest.approx(metadata["metrics"]["f1"])
    assert run.data.metrics["holdout_roc_auc"] == pytest.approx(metadata["metrics"]["roc_auc"])
    assert run.data.tags["dataset_sha256"] == metadata["dataset_sha256"]
    names = {a.path for a in mlflow.list_artifacts(registered.run_id)}
    assert {"drift_baseline.json", "confusion_matrix.png", "artifacts"} <= names
    baseline = mlflow.download_artifacts(registered.run_id, "drift_baseline.json")
    assert json.loads(Path(baseline).read_text()) == metadata["baseline"]


def test_a_downloaded_version_scores_like_the_local_artifacts(
    trained: Path, registry_settings: RegistrySettings, tmp_path: Path,
) -> None:
    registered = log_training_run(trained, settings=registry_settings)
    assert registered is not None
    folder = download_version(registered.number, tmp_path, registry_settings)
    assert folder == tmp_path / f"v{registered.number}"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind
    loaded, local = Predictor(folder), Predictor(trained)
    assert loaded.version == local.version == registered.model_version
    record = customer_record()
    assert loaded.predict_proba([record])[0] == pytest.approx(local.predict_proba([record])[0])
    assert download_version(registered.number, tmp_path, registry_settings) == folder  # cached
