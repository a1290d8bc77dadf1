"""`make run`'s stop leaves nothing behind, however many signals arrive and whenever they arrive.

The launcher runs as `make run` does with no DATABASE_URL: it starts its own embedded PostgreSQL
(free port, its own folder), prepares it, starts the services. Each test interrupts it at another
moment (during the database preparation; just after every service was started, twice in a row;
SIGTERM to its whole process group, twice) and then checks what a user would: the launcher exits,
no process it started is alive (every descendant seen while it ran, and any process carrying this
run's marker in its environment, which catches orphans re-parented to init), no port of the stack
still listens, and the embedded PostgreSQL is stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from launcher.run_local import descendants
from tests.api_server import free_port
from tests.e2e.test_make_run import Launcher, _alive

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

HOST = "127.0.0.1"
MARKER = "CHURN_STOP_TEST_MARKER"
PORT_NAMES = ("EMBEDDED_PG_PORT", "API_PORT", "WEBAPP_PORT", "AIRFLOW_API_PORT", "MLFLOW_PORT",
              "PROMETHEUS_PORT", "GRAFANA_PORT")


class WatchedLauncher(Launcher):
    """The launcher, with every process ever seen below it noted (polled every 0.2 s)."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.seen: set[int] = set()
        self._watching = True
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while self._watching and self.process.poll() is None:
            self.seen |= descendants([self.process.pid])
            time.sleep(0.2)

    def finish(self, seconds: float = 120) -> int:
        code = self.process.wait(timeout=seconds)
        self._watching = False
        time.sleep(0.5)  # the collector thread reads the last lines
        return code


@pytest.fixture
def embedded_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """No DATABASE_URL: the launcher starts (and must stop) its own embedded PostgreSQL."""
    # outside pytest's temporary root, which every pytest run resets to owner-only: as root the
    # server runs as an unprivileged user that must reach its folder
    state = Path(tempfile.mkdtemp(prefix="churn-stop-"))
    state.chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MLFLOW", "DATABASE_URL", "EMBEDDED_PG", "API_TOKEN"))}
    env.update({name: str(free_port(HOST)) for name in PORT_NAMES})
    env.update({
        MARKER: uuid.uuid4().hex, "EMBEDDED_PG_DIR": str(state / "postgres"),
        "AIRFLOW_HOME": str(tmp_path / "airflow"), "LOCAL_LOGS_DIR": str(tmp_path / "logs"),
        "API_URL": f"http://{HOST}:{env['API_PORT']}", "API_TOKEN_FILE": str(tmp_path / "api-token"),
        "REPORTS_DIR": str(tmp_path / "reports"), "RAW_DATA_DIR": str(tmp_path / "raw-data"),
        "GOOD_DATA_DIR": str(tmp_path / "good_data"), "BAD_DATA_DIR": str(tmp_path / "bad_data"),
        "LABELS_DIR": str(tmp_path / "labels"), "LABELS_BAD_DIR": str(tmp_path / "bad_labels"),
        "MLFLOW_ARTIFACTS_DIR": str(tmp_path / "mlflow-artifacts"),
        "PROMETHEUS_DATA_DIR": str(tmp_path / "prometheus"), "GRAFANA_DATA_DIR": str(tmp_path / "grafana"),
        "STOP_GRACE_SECONDS": "10",
    })
    yield env
    pgdata = state / "postgres"
    if (pgdata / "postmaster.pid").exists():  # a failed test must not leave its server running
        from core.settings import DatabaseSettings
        from db import embedded

        embedded.stop(DatabaseSettings(_env_file=None, embedded_pg_dir=pgdata,
                                       embedded_pg_port=int(env["EMBEDDED_PG_PORT"])))
    shutil.rmtree(state, ignore_errors=True)


def marked_processes(marker: str) -> list[psutil.Process]:
    """Live processes whose environment carries this run's marker."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARKER) == marker and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def assert_nothing_left(launcher: WatchedLauncher, env: dict[str, str]) -> None:
    assert launcher.seen, "no child was ever seen: the test interrupted nothing"
    deadline = time.monotonic() + 5  # SIGKILLed processes may take a moment to be reaped
    while time.monotonic() < deadline and [pid for pid in launcher.seen if _alive(pid)]:
        time.sleep(0.2)
    left = {pid: " ".join(psutil.Process(pid).cmdline()[:4]) for pid in launcher.seen if _alive(pid)}
    assert left == {}, f"processes left behind: {left}\n{launcher.output[-3000:]}"
    orphans = [" ".join(p.cmdline()[:4]) for p in marked_processes(env[MARKER])]
    assert orphans == [], f"orphans of this run still alive: {orphans}"
    open_ports = [name for name in PORT_NAMES if listening(int(env[name]))]
    assert open_ports == [], f"still listening: {open_ports}"
    assert not (Path(env["EMBEDDED_PG_DIR"]) / "postmaster.pid").exists(), "embedded PostgreSQL still running"
    assert "all services stopped" in launcher.output, launcher.output[-3000:]


def test_a_signal_during_start_up_stops_the_steps_and_the_database(embedded_env: dict[str, str]) -> None:
    launcher = WatchedLauncher(embedded_env)
    launcher.wait_for("application database migrated", 240)  # Airflow's migration is running now
    time.sleep(1)
    launcher.process.send_signal(signal.SIGINT)
    assert launcher.finish() == 0, launcher.output[-3000:]
    assert_nothing_left(launcher, embedded_env)
    assert "embedded PostgreSQL stopped" in launcher.output


def test_ctrl_c_twice_and_again_during_the_stop_leaves_nothing(embedded_env: dict[str, str]) -> None:
    launcher = WatchedLauncher(embedded_env)
    launcher.wait_for("[make run] started ", 300)  # every service was just started
    launcher.process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    launcher.process.send_signal(signal.SIGINT)
    time.sleep(2)
    launcher.process.send_signal(signal.SIGINT)
    assert launcher.finish() == 0, launcher.output[-3000:]
    assert "SIGINT while stopping: the stop goes on" in launcher.output
    assert "KeyboardInterrupt" not in launcher.output and "Traceback" not in launcher.output
    assert_nothing_left(launcher, embedded_env)


def test_sigterm_to_the_process_group_twice_leaves_nothing(embedded_env: dict[str, str]) -> None:
    launcher = WatchedLauncher(embedded_env)
    launcher.wait_for("[make run] started ", 300)
    time.sleep(5)  # the services are starting up: MLflow's workers, uvicorn, Airflow
    group = os.getpgid(launcher.process.pid)
    os.killpg(group, signal.SIGTERM)  # what `kill -TERM -<pgid>` or a service manager sends
    time.sleep(1)
    os.killpg(group, signal.SIGTERM)
    assert launcher.finish() == 0, launcher.output[-3000:]
    assert "SIGTERM while stopping: the stop goes on" in launcher.output
    assert "Traceback" not in launcher.output
    assert_nothing_left(launcher, embedded_env)
