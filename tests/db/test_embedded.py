"""The embedded PostgreSQL server starts, stops and restarts with its data kept."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg

from core.settings import DatabaseSettings
from db import embedded


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_start_stop_restart_keeps_data(tmp_path: Path) -> None:
    settings = DatabaseSettings(
        _env_file=None, database_url=None, embedded_pg_dir=tmp_path / "pg",
        embedded_pg_port=_free_port(), embedded_pg_database="keepme",
    )
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
