"""`make run`'s launcher as a user runs it: it prints every URL and login, each answers, Ctrl-C
stops every process it started, and a second run reuses the data instead of seeding again.

The launcher (`python -m launcher.run_local`) runs in a subprocess against the test database, a
throwaway Airflow database on the same server, free ports and temporary folders.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from core.settings import REPO_ROOT
from db.admin import drop_database
from launcher.run_local import descendants
from tests.api_server import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2400)]

HOST = "127.0.0.1"
UP_SECONDS = 900  # a bound, not a goal: on a shared machine under load MLflow alone took 4 minutes to start
READY_LINE = "Press Ctrl-C to stop everything."


class Launcher:
    """`python -m launcher.run_local` in its own session, its output collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "launcher.run_local"], cwd=REPO_ROOT, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`make run` never printed {text!r}:\n{self.output[-4000:]}")
            time.sleep(0.5)

    def interrupt(self, seconds: float = 90) -> set[int]:
        """Ctrl-C; returns the processes that were running under the launcher just before."""
        tree = descendants([self.process.pid])
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=seconds)
        time.sleep(0.5)  # the collector thread reads the last lines
        return tree


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's bookkeeping is left


@pytest.fixture
def launcher_env(database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    api_port, webapp_port, airflow_port = free_port(HOST), free_port(HOST), free_port(HOST)
    airflow_database = f"airflow_makerun_{os.getpid()}"
    mlflow_database = f"mlflow_makerun_{os.getpid()}"
    # a clean shell: no Airflow or MLflow configuration inherited from other tests in this process
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW"))}
    env.update({
        "DATABASE_URL": database_url, "AIRFLOW_DATABASE": airflow_database,
        "AIRFLOW_HOME": str(tmp_path / "airflow"), "LOCAL_LOGS_DIR": str(tmp_path / "logs"),
        "API_HOST": HOST, "API_PORT": str(api_port), "API_URL": f"http://{HOST}:{api_port}",
        "REPORTS_BASE_URL": f"http://{HOST}:{api_port}/reports", "REPORTS_DIR": str(tmp_path / "reports"),
        "WEBAPP_PORT": str(webapp_port), "AIRFLOW_API_HOST": HOST, "AIRFLOW_API_PORT": str(airflow_port),
        "RAW_DATA_DIR": str(tmp_path / "raw-data"), "GOOD_DATA_DIR": str(tmp_path / "good_data"),
        "BAD_DATA_DIR": str(tmp_path / "bad_data"), "STOP_GRACE_SECONDS": "10",
        "STARTUP_TIMEOUT_SECONDS": str(UP_SECONDS),  # each service's own bound, as loose as the test's
        "MLFLOW_PORT": str(free_port(HOST)), "MLFLOW_DATABASE": mlflow_database,
        "MLFLOW_ARTIFACTS_DIR": str(tmp_path / "mlflow-artifacts"),
        "LABELS_DIR": str(tmp_path / "labels"), "LABELS_BAD_DIR": str(tmp_path / "bad_labels"),
        "API_TOKEN_FILE": str(tmp_path / "api-token"),  # make run generates it on first start
        "PROMETHEUS_PORT": str(free_port(HOST)), "PROMETHEUS_DATA_DIR": str(tmp_path / "prometheus"),
        "PROMETHEUS_SCRAPE_INTERVAL_SECONDS": "2",
        "GRAFANA_PORT": str(free_port(HOST)), "GRAFANA_DATA_DIR": str(tmp_path / "grafana"),
        "PATH": os.environ["PATH"],
    })
    env.pop("API_TOKEN", None)
    yield env
    drop_database(server_url=database_url, name=airflow_database)
    drop_database(server_url=database_url, name=mlflow_database)


def listening_sockets(pids: set[int]) -> dict[str, list[str]]:
    """Every listening TCP socket of `pids`: command name -> addresses (host:port)."""
    found: dict[str, list[str]] = {}
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                name = " ".join(psutil.Process(connection.pid).cmdline()[:3])
                found.setdefault(name, []).append(f"{connection.laddr.ip}:{connection.laddr.port}")
    return found


def token_file_of(pid: int) -> str | None:
    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
        return psutil.Process(pid).environ().get("API_TOKEN_FILE")
    return None


def _answer(url: str) -> int | str:
    """The status code of GET `url` as a browser asks it (redirects followed), or the connection
    error (so the assertion shows which service did not answer, with the launcher's output)."""
    try:
        return httpx.get(url, timeout=30, follow_redirects=True).status_code
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}"


def _run_until_ready_then_interrupt(env: dict[str, str]) -> tuple[str, dict[str, str], dict[str, Any]]:
    launcher = Launcher(env)
    seen: dict[str, Any] = {}
    try:
        launcher.wait_for(READY_LINE, UP_SECONDS)
        urls = dict(re.findall(r"^\s+(api|webapp|airflow-api-server|mlflow|prometheus)\s+(http://\S+)",
                               launcher.output, re.M))
        answers = {name: _answer(url) for name, url in urls.items()}
        tree = descendants([launcher.process.pid])
        seen["sockets"] = listening_sockets(tree)
        seen["token files"] = {token_file_of(pid) for pid in tree} - {None}
        seen["api without token"] = _answer(f"{env['API_URL']}/model")
        if "prometheus" in urls:
            seen["api scraped"] = _wait_for_scrape(urls["prometheus"])
    finally:
        tree = launcher.interrupt() if launcher.process.poll() is None else set()
    assert launcher.process.returncode == 0, launcher.output[-3000:]
    assert "all services stopped" in launcher.output
    assert [pid for pid in tree if _alive(pid)] == [], "processes left behind after Ctrl-C"
    expected = {"api": 200, "webapp": 200, "airflow-api-server": 200, "mlflow": 200}
    if shutil.which("prometheus"):
        expected["prometheus"] = 200
    assert answers == expected, launcher.output[-3000:]
    return launcher.output, urls, seen


def _wait_for_scrape(prometheus: str, seconds: float = 60) -> float:
    """up{job="churn-api"} once Prometheus has scraped the API (1: it got in with the token)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = httpx.get(f"{prometheus.rstrip('/')}/api/v1/query", params={"query": 'up{job="churn-api"}'})
        result = answer.json()["data"]["result"]
        if result:
            return float(result[0]["value"][1])
        time.sleep(1)
    return -1.0


def test_make_run_serves_every_url_stops_cleanly_and_reuses_its_data(launcher_env: dict[str, str]) -> None:
    first, urls, seen = _run_until_ready_then_interrupt(launcher_env)
    assert urls["api"] == f"http://{HOST}:{launcher_env['API_PORT']}/docs"
    assert urls["webapp"] == f"http://{HOST}:{launcher_env['WEBAPP_PORT']}"
    assert urls["airflow-api-server"] == f"http://{HOST}:{launcher_env['AIRFLOW_API_PORT']}"
    assert urls["mlflow"] == f"http://{HOST}:{launcher_env['MLFLOW_PORT']}"
    # closed by default: a token generated on first start, printed once, handed to every child
    token_file = Path(launcher_env["API_TOKEN_FILE"])
    assert f"API token generated (shown this once; kept in {token_file}" in first
    assert token_file.read_text().strip() in first
    assert f"login: Authorization: Bearer $(cat {token_file})" in first
    assert seen["api without token"] == 401, first[-4000:]
    assert seen["token files"] == {str(token_file)}  # the webapp, the scheduler (its DAGs), ...
    # every listening socket of the stack is on loopback, Airflow's included
    exposed = {name: addresses for name, addresses in seen["sockets"].items()
               if any(not address.startswith(("127.0.0.1:", "[::1]:", "::1:")) for address in addresses)}
    assert seen["sockets"] and exposed == {}, seen["sockets"]
    if shutil.which("prometheus"):  # Debian's package: .ci/run installs it
        assert urls["prometheus"] == f"http://{HOST}:{launcher_env['PROMETHEUS_PORT']}"
        assert seen["api scraped"] == 1.0, "Prometheus could not scrape the API's /metrics with the token"
    # a fresh registry gets the trained model as its first champion; a second run keeps it
    assert re.search(r"model registry: registered version 1 \(churn-lr-\w+\) aliases: champion", first)
    assert "grafana" in first  # started, or why not
    seeded = sorted(Path(launcher_env["RAW_DATA_DIR"]).glob("*.csv"))
    assert re.search(r"raw-data: seeded .* with 20 files", first)
    for service in ("api", "webapp", "airflow-scheduler", "airflow-dag-processor", "mlflow", "seed-labels"):
        assert (Path(launcher_env["LOCAL_LOGS_DIR"]) / f"{service}.log").stat().st_size > 0

    second, _, _ = _run_until_ready_then_interrupt(launcher_env)
    assert "already holds CSV files: not seeding" in second
    assert f"API token: kept in {token_file}" in second and token_file.read_text().strip() not in second
    assert "model registry: champion already registered: version 1" in second
    # every file of the first run is still somewhere: waiting, claimed (renamed with a prefix into
    # raw-data/.claims), or sorted by ingestion
    kept = [p.name for folder in ("RAW_DATA_DIR", "GOOD_DATA_DIR", "BAD_DATA_DIR")
            for p in Path(launcher_env[folder]).rglob("*.csv")]
    assert [p.name for p in seeded if not any(k.endswith(p.name) for k in kept)] == []
