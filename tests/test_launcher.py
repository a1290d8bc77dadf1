"""The `make run` launcher's own behaviour: stopping leaves no process, settings follow the child's env.

Starting the whole stack is covered by tests/e2e/test_stack.py, which uses the same functions.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher.run_local import RunningService, _dag_ids, check_ports_free, describe, stop_services
from launcher.services import SERVICES, Service, command_for

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
