"""The `make run` launcher's own behaviour: stopping leaves no process, settings follow the child's env.

Starting the whole stack is covered by tests/e2e/test_stack.py, which uses the same functions.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from launcher.run_local import RunningService, StopGate, _dag_ids, check_ports_free, describe, stop_services
from launcher.services import SERVICES, Service, command_for, render_prometheus_config

# A server that ignores SIGTERM and runs a worker in its own session, out of reach of the
# server's process group (as Airflow's task processes are).
STUBBORN_SERVER = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
ignore_and_sleep = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
worker = subprocess.Popen([sys.executable, "-c", ignore_and_sleep], start_new_session=True)
print(worker.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Running or sleeping; a zombie waiting for its parent to reap it is not alive."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_stop_kills_a_server_that_ignores_sigterm_and_its_worker_in_another_session(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", STUBBORN_SERVER], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    worker_pid = int(process.stdout.readline())
    running = [RunningService(Service("stubborn", []), process, tmp_path / "stubborn.log")]
    began = time.monotonic()

    stop_services(running, grace=1)

    assert time.monotonic() - began < 10
    assert process.returncode is not None
    deadline = time.monotonic() + 5
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker_pid)


def test_a_service_is_described_with_the_settings_its_child_will_read() -> None:
    before = dict(os.environ)
    api = describe("api", {**os.environ, "API_HOST": "127.0.0.1", "API_PORT": "18123"})
    assert api.health_url == "http://127.0.0.1:18123/health"
    assert api.argv[api.argv.index("--port") + 1] == "18123"
    assert dict(os.environ) == before


def test_every_service_has_a_command_and_servers_say_how_to_reach_them() -> None:
    for name in SERVICES:
        service = command_for(name)
        assert service.argv, name
        if service.url:
            assert service.login and service.health_url, name
    assert command_for("airflow-scheduler").health_argv[-3:] == ["--job-type", "SchedulerJob", "--local"]


def test_dag_ids_are_read_past_warning_lines_that_contain_brackets() -> None:
    listing = (
        "2026-11-24T09:18:03Z [warning  ] Could not import graphviz. [py.warnings]\n"
        '[{"dag_id": "data_ingestion", "is_paused": "False"}, {"dag_id": "prediction_job"}]\n'
    )
    assert _dag_ids(listing) == ["data_ingestion", "prediction_job"]
    assert _dag_ids("No data found\n") == []


def test_a_taken_port_stops_the_launcher_with_the_variable_to_change() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {**os.environ, "API_HOST": "127.0.0.1", "API_PORT": str(port)}
        with pytest.raises(SystemExit, match=rf"api: port {port} is already in use.*set API_PORT"):
            check_ports_free(["api"], env)


# --- the stop gate: one orderly stop, whatever the signals ------------------------------------------

@pytest.fixture
def gate() -> Iterator[StopGate]:
    """A StopGate handling SIGINT/SIGTERM/SIGHUP in this process; the former handlers come back after."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    gate = StopGate()
    gate.install()
    yield gate
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _deliver(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # Python runs the handler at the next bytecode of the main thread


def test_the_first_signal_stops_and_later_ones_are_ignored(
    gate: StopGate, capfd: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(KeyboardInterrupt):
        _deliver(signal.SIGTERM)
    assert gate.stopping
    _deliver(signal.SIGINT)  # Ctrl-C during the stop: no exception, the stop goes on
    _deliver(signal.SIGTERM)
    assert "SIGINT while stopping: the stop goes on" in capfd.readouterr().err


def test_a_signal_inside_deferred_is_held_until_the_block_ends(gate: StopGate) -> None:
    finished = False
    with pytest.raises(KeyboardInterrupt), gate.deferred():
        _deliver(signal.SIGINT)
        with gate.deferred():  # nested: held until the outermost block ends
            _deliver(signal.SIGTERM)
        finished = True
    assert finished and gate.stopping


def test_a_step_interrupted_is_stopped_with_its_children(tmp_path: Path) -> None:
    """run_step's child runs in its own group, registered with STACK: stopping the stack ends it."""
    from launcher import run_local

    before = len(run_local.STACK.steps)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    step = RunningService(Service("step", [], long_running=False), worker, tmp_path / "step.log")
    run_local.STACK.steps.append(step)
    try:
        run_local.Stack(steps=[step]).stop(grace=1)
        assert worker.poll() is not None
    finally:
        del run_local.STACK.steps[before:]


# --- closed by default --------------------------------------------------------------------------------

def test_airflow_log_servers_are_not_started_as_they_would_bind_every_interface() -> None:
    assert "--skip-serve-logs" in command_for("airflow-scheduler").argv
    assert "--skip-serve-logs" in command_for("airflow-triggerer").argv


def test_make_run_hands_every_child_the_generated_token_file_unless_api_token_is_set(tmp_path: Path) -> None:
    from launcher.run_local import configure_api_token

    env = {"API_TOKEN_FILE": str(tmp_path / "api-token")}
    configure_api_token(env)
    token = (tmp_path / "api-token").read_text().strip()
    assert len(token) >= 40 and env["API_TOKEN_FILE"] == str(tmp_path / "api-token")
    configure_api_token(env)  # a second start keeps it
    assert (tmp_path / "api-token").read_text().strip() == token
    given = {"API_TOKEN": "from-dot-env"}
    configure_api_token(given)
    assert given == {"API_TOKEN": "from-dot-env"}


def test_prometheus_listens_on_loopback_and_scrapes_the_api_with_the_token(tmp_path: Path) -> None:
    prometheus = describe("prometheus", {**os.environ, "PROMETHEUS_PORT": "19191",
                                         "PROMETHEUS_DATA_DIR": str(tmp_path)})
    assert "--web.listen-address=127.0.0.1:19191" in prometheus.argv
    assert prometheus.health_url == "http://127.0.0.1:19191/-/ready"
    config = render_prometheus_config(tmp_path, api_target="127.0.0.1:8000", api_token="t0ken",
                                      prometheus_target="127.0.0.1:19191", scrape_interval_seconds=15)
    scrape = yaml.safe_load(config.read_text())["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == ["127.0.0.1:8000"]
    assert scrape["authorization"] == {"type": "Bearer", "credentials_file": str(tmp_path / "api-token")}
    assert (tmp_path / "api-token").read_text() == "t0ken"
    assert stat.S_IMODE((tmp_path / "api-token").stat().st_mode) == 0o600


def test_composes_token_step_gives_the_app_its_file_and_prometheus_a_read_only_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """`python -m launcher.api_token --owner --copy --copy-owner` as compose runs it (as root):
    the token printed once, the app's file 0600 owned by the app's uid, Prometheus's copy 0400
    owned by nobody, both holding the same token; a second start keeps and copies it again."""
    from launcher.api_token import main

    if os.geteuid() != 0:
        pytest.fail("this test gives files other owners, as compose's step does: run it as root")
    app_file, copy = tmp_path / "secrets" / "api-token", tmp_path / "prometheus" / "api-token"
    monkeypatch.delenv("API_TOKEN", raising=False)
    monkeypatch.setenv("API_TOKEN_FILE", str(app_file))
    argv = ["--owner", "50000:0", "--copy", str(copy), "--copy-owner", "65534:65534"]
    main(argv)
    token = app_file.read_text().strip()
    assert token in capsys.readouterr().out
    def owner_and_mode(path: Path) -> tuple[int, int, int]:
        return path.stat().st_uid, path.stat().st_gid, stat.S_IMODE(path.stat().st_mode)

    assert owner_and_mode(app_file) == (50000, 0, 0o600)
    assert owner_and_mode(copy) == (65534, 65534, 0o400)
    assert copy.read_text().strip() == token
    main(argv)
    assert token not in capsys.readouterr().out
    assert app_file.read_text().strip() == token == copy.read_text().strip()
    assert [p.name for p in copy.parent.iterdir()] == ["api-token"]  # no temporary left behind

    monkeypatch.setenv("API_TOKEN", "set-in-env")  # API_TOKEN in .env wins: Prometheus gets that one
    main(argv)
    assert copy.read_text().strip() == "set-in-env"
