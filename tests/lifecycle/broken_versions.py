"""Model versions the code cannot serve, built from a real trained one, for the admission tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest.mock import patch

import onnx

from core.settings import REPO_ROOT, RegistrySettings
from model.files import METADATA_FILE
from model.onnx_export import ONNX_FILE
from model.registry import RegisteredVersion

RENAMED_FROM, RENAMED_TO = "tenure", "tenure_months"


def with_renamed_input(trained: Path, out: Path, suffix: str = "-renamed") -> Path:
    """A copy of `trained` whose ONNX graph expects `tenure_months` where the contract says `tenure`
    (what newer training code renaming a feature exports), as its own model version."""
    shutil.copytree(trained, out, dirs_exist_ok=True)
    model = onnx.load(str(out / ONNX_FILE))
    for node in model.graph.input:
        if node.name == RENAMED_FROM:
            node.name = RENAMED_TO
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name == RENAMED_FROM:
                node.input[i] = RENAMED_TO
    onnx.checker.check_model(model)
    (out / ONNX_FILE).write_bytes(model.SerializeToString())
    metadata = json.loads((out / METADATA_FILE).read_text())
    metadata["model_version"] += suffix
    (out / METADATA_FILE).write_text(json.dumps(metadata))
    return out


def with_version_suffix(trained: Path, out: Path, suffix: str) -> Path:
    """A copy of `trained` under its own model version (same pipeline, same scores)."""
    shutil.copytree(trained, out, dirs_exist_ok=True)
    metadata = json.loads((out / METADATA_FILE).read_text())
    metadata["model_version"] += suffix
    (out / METADATA_FILE).write_text(json.dumps(metadata))
    return out


def register_unchecked(
    folder: Path, alias: str | None, settings: RegistrySettings,
) -> RegisteredVersion:
    """Register `folder` as another trainer (or a person in the MLflow UI) would: no admission,
    and a pyfunc logged without running the model (no signature, no input example)."""
    import mlflow

    from model import registry
    from model.pyfunc import ARTIFACTS_KEY, ChurnModel

    def log_unchecked(artifacts_dir: Path) -> object:
        return mlflow.pyfunc.log_model(name="model", python_model=ChurnModel(),
                                       artifacts={ARTIFACTS_KEY: str(artifacts_dir)})

    with patch.object(registry, "_check_admissible", lambda _: None), \
            patch.object(registry, "_log_pyfunc", log_unchecked):
        registered = registry.log_training_run(folder, alias=alias, settings=settings)
    assert registered is not None
    return registered


def forget_served_versions() -> None:
    """Clear `model_versions.served_since` (the session's database is shared: a version an API of a
    registry test served must not stay the drift reference of the tests that follow)."""
    from sqlalchemy import text

    from db.session import session_scope

    with session_scope() as session:
        session.execute(text("UPDATE model_versions SET served_since = NULL"))


def delete_run_artifacts(run_id: str, settings: RegistrySettings) -> None:
    """Delete a training run's artifacts folder from the artifact store, through the MLflow server
    (what a retention job or a person cleaning the store does): the version stays registered, its
    artifacts cannot be downloaded any more."""
    from mlflow import MlflowClient
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from model.registry import RUN_ARTIFACTS

    run = MlflowClient(settings.mlflow_tracking_uri).get_run(run_id)
    get_artifact_repository(run.info.artifact_uri).delete_artifacts(RUN_ARTIFACTS)


def run_lifecycle_cli(registry: RegistrySettings, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m jobs.lifecycle *args` against `registry`, as an operator runs it; its output captured."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.mlflow_tracking_uri or "",
           "MLFLOW_MODEL_NAME": registry.mlflow_model_name}
    return subprocess.run([sys.executable, "-m", "jobs.lifecycle", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
