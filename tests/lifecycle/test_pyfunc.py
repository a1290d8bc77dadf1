"""The registered model is the served model: `models:/<name>@champion` loaded with MLflow's own
loader and served by `mlflow models serve` (a real subprocess) decides as the real API does on
2,000 customers of the dataset; the logged model has a signature, an input example and the training
dataset as its run's input; the gate's figures land on the challenger's run."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from core.settings import RegistrySettings
from jobs.lifecycle import run_gate
from model.contract import FEATURE_NAMES
from model.pyfunc import OUTPUT_COLUMNS
from model.registry import CHALLENGER, CHAMPION, log_training_run
from model.train import train
from tests.api_server import free_port, start_api_server, start_server_process
from tests.factories import dataset_records
from tests.lifecycle.broken_versions import forget_served_versions, with_version_suffix

CUSTOMERS = 2000
SERVE_STARTUP_SECONDS = 180


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    train(out_dir=out)
    return out


def _api_decisions(api: str, records: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    answer = httpx.post(f"{api}/predict", json={"source": "webapp", "records": records}, timeout=120)
    assert answer.status_code == 200, answer.text[:500]
    return answer.json()["model_version"], answer.json()["predictions"]


def test_the_registered_champion_decides_as_the_api_with_mlflows_loader_and_server(
    trained: Path, registry_settings: RegistrySettings, clean_db: str,
) -> None:
    registered = log_training_run(trained, alias=CHAMPION, settings=registry_settings)
    assert registered is not None
    uri = f"models:/{registry_settings.mlflow_model_name}@{CHAMPION}"

    # what MLflow knows of it: signature, input example, the training rows as the run's dataset
    info = mlflow.models.get_model_info(uri)
    assert info.signature is not None
    assert info.signature.inputs.input_names() == list(FEATURE_NAMES)
    assert info.signature.outputs.input_names() == list(OUTPUT_COLUMNS)
    assert info.saved_input_example_info is not None
    run = MlflowClient(registry_settings.mlflow_tracking_uri).get_run(registered.run_id)
    [dataset] = run.inputs.dataset_inputs
    assert dataset.dataset.name == f"{registered.model_version} training rows"
    assert {t.key: t.value for t in dataset.tags}.get("mlflow.data.context") == "training"
    assert json.loads(dataset.dataset.profile)["num_rows"] == json.loads(
        (trained / "metadata.json").read_text())["training_rows"]

    records = [{name: r[name] for name in FEATURE_NAMES} for r in dataset_records(CUSTOMERS)]
    frame = pd.DataFrame(records)
    api, stop_api = start_api_server(clean_db, env={
        "API_TOKEN": "", "MLFLOW_TRACKING_URI": registry_settings.mlflow_tracking_uri or "",
        "MLFLOW_MODEL_NAME": registry_settings.mlflow_model_name,
        "MODEL_STARTUP_WAIT_SECONDS": "50"})
    try:
        deadline = time.monotonic() + 120  # the first poll may outlast the startup wait when loaded
        while httpx.get(f"{api}/model", timeout=10).json()["model_version"] != registered.model_version:
            assert time.monotonic() < deadline, "the API did not serve the champion"
            time.sleep(0.3)
        version, answers = _api_decisions(api, records)
    finally:
        stop_api()
        forget_served_versions()
    assert version == registered.model_version
    api_labels = np.array([a["label"] for a in answers])
    api_probabilities = np.array([a["churn_probability"] for a in answers])
    assert 0 < api_labels.mean() < 1  # both decisions occur

    loaded = mlflow.pyfunc.load_model(uri).predict(frame)
    assert (loaded["label"].to_numpy() == api_labels).all()
    assert np.abs(loaded["churn_probability"].to_numpy() - api_probabilities).max() < 1e-12
    assert [[r["feature"] for r in json.loads(cell)] for cell in loaded["reasons"]] == [
        [r["feature"] for r in a["reasons"]] for a in answers]
    assert set(loaded["model_version"]) == {registered.model_version}
    cut_at_half = (api_probabilities >= 0.5).astype(int)  # what a plain classifier's predict gives
    print(f"\n{CUSTOMERS} customers: MLflow's loader and the API give the same label to all; "
          f"a 0.5 cut would differ on {int((cut_at_half != api_labels).sum())}")

    port = free_port("127.0.0.1")
    argv = [str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m", uri, "--env-manager",
            "local", "--host", "127.0.0.1", "--port", str(port)]
    # MLflow runs `uvicorn` from PATH: the virtual environment's, as in an activated shell
    environ = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    stop_serve = start_server_process("mlflow models serve", argv, environ,
                                      f"http://127.0.0.1:{port}/ping", timeout=SERVE_STARTUP_SECONDS)
    try:
        split = frame.astype(object).where(frame.notna(), None).to_dict(orient="split")
        served = httpx.post(f"http://127.0.0.1:{port}/invocations", timeout=120, json={
            "dataframe_split": {"columns": split["columns"], "data": split["data"]}})
    finally:
        stop_serve()
    assert served.status_code == 200, served.text[:500]
    rows = served.json()["predictions"]
    assert len(rows) == CUSTOMERS
    assert [row["label"] for row in rows] == api_labels.tolist()
    assert np.abs(np.array([row["churn_probability"] for row in rows]) - api_probabilities).max() < 1e-12


def test_the_gates_figures_are_logged_on_the_challengers_run(
    trained: Path, registry_settings: RegistrySettings, clean_db: str, tmp_path: Path,
) -> None:
    champion = log_training_run(trained, alias=CHAMPION, settings=registry_settings)
    challenger = log_training_run(with_version_suffix(trained, tmp_path / "b", "-b"), alias=CHALLENGER,
                                  settings=registry_settings)
    assert champion is not None and challenger is not None
    decision = run_gate(registry=registry_settings, by="test")
    assert decision is not None and not decision.enough_rows  # no labelled customers yet
    client = MlflowClient(registry_settings.mlflow_tracking_uri)
    logged = client.get_run(challenger.run_id).data.metrics
    assert logged["gate_rows"] == 0 and logged["gate_promote"] == 0 and logged["gate_enough_rows"] == 0
    assert "gate_rows" not in client.get_run(champion.run_id).data.metrics
