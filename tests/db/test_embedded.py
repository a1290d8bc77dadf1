"""The embedded PostgreSQL server starts, stops and restarts with its data kept; a server of another
data folder on the port is never used nor stopped; tests and benchmarks get a server of their own,
which goes away with them, even when they are killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core.settings import REPO_ROOT, DatabaseSettings
from db import embedded

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _settings(folder: Path, port: int, database: str = "keepme") -> DatabaseSettings:
    return DatabaseSettings(
        _env_file=None, database_url=None, embedded_pg_dir=folder, embedded_pg_host=HOST,
        embedded_pg_port=port, embedded_pg_database=database,
    )


def _wait_until(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return bool(condition())  # type: ignore[operator]


def test_start_stop_restart_keeps_data(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "pg", _free_port())
    url = embedded.ensure_running(settings).replace("+psycopg", "")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        assert embedded.stop(settings)
        assert not embedded.is_accepting(settings.embedded_pg_host, settings.embedded_pg_port)
        assert embedded.ensure_running(settings).replace("+psycopg", "") == url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [(42,)]
        # a second call while it runs is a no-op that returns the same URL
        assert embedded.ensure_running(settings).replace("+psycopg", "") == url
    finally:
        embedded.stop(settings)


@pytest.fixture
def other_checkouts_server(tmp_path: Path) -> Iterator[DatabaseSettings]:
    """A running embedded server of another data folder (another checkout's `make run`), with data."""
    settings = _settings(tmp_path / "other-checkout" / "postgres", _free_port(), database="theirs")
    url = embedded.ensure_running(settings).replace("+psycopg", "")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE registry (champion text)")
        conn.execute("INSERT INTO registry VALUES ('their-model')")
    yield settings
    embedded.stop(settings)


def _still_serves_its_own_data(settings: DatabaseSettings) -> bool:
    url = embedded.server_url(settings).replace("+psycopg", "")
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT champion FROM registry").fetchall() == [("their-model",)]


def test_a_server_of_another_data_folder_on_the_port_is_refused_named_and_left_running(
    other_checkouts_server: DatabaseSettings, tmp_path: Path,
) -> None:
    theirs = other_checkouts_server
    mine = _settings(tmp_path / "this-checkout" / "postgres", theirs.embedded_pg_port, database="churn")

    with pytest.raises(embedded.PortTakenError) as refused:
        embedded.ensure_running(mine)

    message = str(refused.value)
    assert f"port {theirs.embedded_pg_port} on {HOST} is taken by another PostgreSQL server" in message
    assert f"whose data folder is {theirs.embedded_pg_dir.resolve()}" in message
    assert f"this checkout's is {mine.embedded_pg_dir.resolve()}" in message
    assert "EMBEDDED_PG_PORT" in message
    assert not mine.embedded_pg_dir.exists()  # nothing initialised in this checkout's folder
    assert not embedded.stop(mine)  # "stop" here never reaches their server
    assert _still_serves_its_own_data(theirs)
    assert embedded.serving_folder(HOST, theirs.embedded_pg_port) == theirs.embedded_pg_dir.resolve()


def test_a_stale_pid_file_naming_another_server_does_not_stop_it(
    other_checkouts_server: DatabaseSettings, tmp_path: Path,
) -> None:
    """After a crash, this folder's postmaster.pid may name a process id now used by another server."""
    mine = _settings(tmp_path / "this-checkout" / "postgres", _free_port())
    mine.embedded_pg_dir.mkdir(parents=True)
    theirs = other_checkouts_server.embedded_pg_dir
    owner = theirs.stat()
    for name in ("PG_VERSION", "postmaster.pid"):  # a cluster folder, with the other's pid
        (mine.embedded_pg_dir / name).write_text((theirs / name).read_text())
        os.chown(mine.embedded_pg_dir / name, owner.st_uid, owner.st_gid)
    for path in (mine.embedded_pg_dir.parent, mine.embedded_pg_dir):
        os.chown(path, owner.st_uid, owner.st_gid)  # as the server's user would have left them

    assert not embedded.stop(mine)

    assert _still_serves_its_own_data(other_checkouts_server)


def test_make_run_stops_with_the_port_and_the_other_servers_folder_and_leaves_it_running(
    other_checkouts_server: DatabaseSettings, tmp_path: Path,
) -> None:
    theirs = other_checkouts_server
    mine = tmp_path / "this-checkout" / "postgres"
    env = {k: v for k, v in os.environ.items()
           if k != "DATABASE_URL" and not k.startswith(("AIRFLOW", "MLFLOW"))}
    env.update({
        "EMBEDDED_PG_DIR": str(mine), "EMBEDDED_PG_PORT": str(theirs.embedded_pg_port),
        "EMBEDDED_PG_HOST": HOST,
        "API_HOST": HOST, "API_PORT": str(_free_port()), "WEBAPP_PORT": str(_free_port()),
        "AIRFLOW_API_HOST": HOST, "AIRFLOW_API_PORT": str(_free_port()), "MLFLOW_PORT": str(_free_port()),
        "GRAFANA_PORT": str(_free_port()), "LOCAL_LOGS_DIR": str(tmp_path / "logs"),
    })

    result = subprocess.run([sys.executable, "-m", "launcher.run_local"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert (f"[make run] database: port {theirs.embedded_pg_port} on {HOST} is taken by another "
            f"PostgreSQL server, whose data folder is {theirs.embedded_pg_dir.resolve()}") in output
    assert "Traceback" not in output
    assert not mine.exists()
    assert _still_serves_its_own_data(theirs)


def test_a_program_that_is_not_postgresql_on_the_port_is_refused_by_name(tmp_path: Path) -> None:
    with socket.socket() as squatter:  # listens, never answers
        squatter.bind((HOST, 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(embedded.PortTakenError, match=rf"port {port} on {HOST} is taken by a program "
                                                          r"that is not this checkout's embedded PostgreSQL"):
            embedded.ensure_running(_settings(tmp_path / "pg", port))
    assert not (tmp_path / "pg").exists()


def test_a_throwaway_server_is_its_own_and_is_deleted_after_use() -> None:
    checkout = DatabaseSettings(_env_file=None)
    with embedded.throwaway_server() as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        folder = embedded.serving_folder(HOST, port)
        assert port != checkout.embedded_pg_port
        assert folder.parent.name.startswith(embedded.THROWAWAY_PREFIX)
        assert folder.parent.parent == Path(tempfile.gettempdir()).resolve()
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not embedded.is_accepting(HOST, port)
    assert not folder.parent.exists()


KILLED_OWNER = """
import time
from db import embedded
with embedded.throwaway_server() as url:
    print(url, flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_throwaway_server_goes_away_when_its_owner_is_killed(sig: signal.Signals) -> None:
    owner = subprocess.Popen([sys.executable, "-W", "ignore", "-c", KILLED_OWNER], cwd=REPO_ROOT,
                             stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    url = owner.stdout.readline().strip()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    folder = embedded.serving_folder(HOST, port).parent

    owner.send_signal(sig)
    owner.wait(timeout=30)

    assert _wait_until(lambda: not embedded.is_accepting(HOST, port) and not folder.exists(), 60), \
        f"the server on port {port} ({folder}) outlived its owner"
