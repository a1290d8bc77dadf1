"""The real API, served by uvicorn in a subprocess on a free port, for any test that calls it.

    from tests.api_server import start_api_server
    base_url, stop = start_api_server(database_url, env={"API_TOKEN": "secret"})

or the session fixture `api_url` (import it into a conftest.py or a test module:
`from tests.api_server import api_url  # noqa: F401`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from core.settings import REPO_ROOT, ApiServerSettings

STARTUP_SECONDS = 60


_HANDED_OUT: set[int] = set()  # every port free_port gave in this process


def free_port(host: str) -> int:
    """A port free on `host` now, and never one this process was given before.

    The kernel may hand the same free port to two binds in a row: make run's API and webapp were
    once given one port, and the API could not start (tests/e2e/test_make_run.py). A port another
    process takes between this call and its use cannot be guarded against here."""
    while True:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def start_api_server(
    database_url: str, env: Mapping[str, str] | None = None,
) -> tuple[str, Callable[[], None]]:
    """Start `python -m api.main` against `database_url`; return its base URL and a stop function.

    `env` adds or overrides environment variables (API_TOKEN, MAX_RECORDS_PER_REQUEST, ...);
    MODEL_CACHE_DIR is a temporary folder of this server unless `env` names one.
    Waits until /health answers (200 or 503); the server's output is shown if it fails to start.
    """
    host = ApiServerSettings(_env_file=None).api_host
    port = free_port(host)
    cache = tempfile.mkdtemp(prefix="churn-model-cache-")  # admitted versions: never the developer's
    environ = {**os.environ, "DATABASE_URL": database_url, "API_HOST": host, "API_PORT": str(port),
               "MODEL_CACHE_DIR": cache, **(env or {})}
    base_url = f"http://{host}:{port}"
    try:
        stop_server = start_server_process(
            "the API", [sys.executable, "-m", "api.main"], environ, f"{base_url}/health",
        )
    except Exception:
        shutil.rmtree(cache, ignore_errors=True)
        raise

    def stop() -> None:
        stop_server()
        shutil.rmtree(cache, ignore_errors=True)

    return base_url, stop


def start_server_process(
    name: str, argv: list[str], environ: Mapping[str, str], health_url: str,
    timeout: float = STARTUP_SECONDS,
) -> Callable[[], None]:
    """Start a server subprocess (output to a temporary log) and wait until `health_url` answers
    with any HTTP status; return its stop function. The log's tail is shown if it fails to start."""
    log = tempfile.NamedTemporaryFile(prefix="server-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(argv, cwd=REPO_ROOT, env=dict(environ), stdout=log, stderr=subprocess.STDOUT)

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        Path(log.name).unlink(missing_ok=True)

    try:
        _wait_until_answering(name, health_url, process, Path(log.name), timeout)
    except Exception:
        stop()
        raise
    return stop


def _wait_until_answering(
    name: str, health_url: str, process: subprocess.Popen[bytes], log: Path, timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(health_url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer in {timeout:.0f}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def api_url(database_url: str) -> Iterator[str]:
    """Base URL of a real API (uvicorn) on the session's test database, open (no token), serving the
    local artifacts (no registry, whatever MLFLOW_TRACKING_URI an earlier fixture exported)."""
    base_url, stop = start_api_server(database_url, env={"API_TOKEN": "", "MLFLOW_TRACKING_URI": ""})
    yield base_url
    stop()
