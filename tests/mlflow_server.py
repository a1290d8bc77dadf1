"""A real MLflow tracking server for the tests: `mlflow server` on a free port, its backend store a
database of its own on the test PostgreSQL server, its artifacts in a temporary folder.

    from tests.mlflow_server import mlflow_url  # noqa: F401  (the session fixture)

The fixture also exports MLFLOW_TRACKING_URI, so subprocesses (the API) and in-process code
(training, DAG tasks run by dag.test()) use this server. Each test gets its own registered-model
name through the `registry_settings` fixture, so tests do not see each other's aliases.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import RegistrySettings
from db.admin import drop_database
from db.mlflow_store import ensure_mlflow_database
from tests.api_server import free_port, start_server_process

# a first start creates and migrates MLflow's tables: about 30 s on a shared 2-core machine
MLFLOW_STARTUP_SECONDS = 360  # (180 was exceeded at load average 30+ on the shared machine)


@pytest.fixture(scope="session")
def mlflow_url(database_url: str) -> Iterator[str]:
    """Base URL of a real MLflow server for this test session (MLFLOW_TRACKING_URI set to it)."""
    name = f"mlflow_test_{os.getpid()}"
    backend = ensure_mlflow_database(database_url, name)
    artifacts = Path(tempfile.mkdtemp(prefix="churn-mlflow-artifacts-"))
    port = free_port("127.0.0.1")
    url = f"http://127.0.0.1:{port}"
    argv = [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", backend,
            "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1"]
    stop = start_server_process("MLflow", argv, dict(os.environ), f"{url}/health",
                                timeout=MLFLOW_STARTUP_SECONDS)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = url
    yield url
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous
    stop()
    shutil.rmtree(artifacts, ignore_errors=True)
    drop_database(server_url=database_url, name=name)


@pytest.fixture
def registry_settings(mlflow_url: str, monkeypatch: pytest.MonkeyPatch) -> RegistrySettings:
    """Registry settings of a model name of this test's own (also exported as MLFLOW_MODEL_NAME)."""
    name = f"churn-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLFLOW_MODEL_NAME", name)
    return RegistrySettings(mlflow_tracking_uri=mlflow_url, mlflow_model_name=name)
