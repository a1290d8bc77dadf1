"""db/admin.py: the one place that creates and drops databases, on the real server."""

from __future__ import annotations

import os

import psycopg
from sqlalchemy.engine import make_url

from db.admin import create_database, drop_database


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _exists(server_url: str, name: str) -> bool:
    with psycopg.connect(_libpq(server_url)) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def test_create_keeps_an_existing_database_replace_empties_it_and_drop_removes_it(database_url: str) -> None:
    # a quote and a capital in the name: the identifier is quoted, not pasted into the SQL
    name = f'Admin"test"_{os.getpid()}'
    url = create_database(server_url=database_url, name=name, replace=True)
    assert make_url(url).database == name
    assert make_url(url).drivername == make_url(database_url).drivername
    with psycopg.connect(_libpq(url), autocommit=True) as connection:
        connection.execute("CREATE TABLE kept (x int)")

    assert create_database(server_url=database_url, name=name) == url  # exists: kept as it is
    with psycopg.connect(_libpq(url)) as connection:
        assert connection.execute("SELECT to_regclass('kept')").fetchone() == ("kept",)

    create_database(server_url=database_url, name=name, replace=True)  # replaced: empty again
    with psycopg.connect(_libpq(url)) as connection:
        assert connection.execute("SELECT to_regclass('kept')").fetchone() == (None,)

    open_session = psycopg.connect(_libpq(url))  # a session left open does not block the drop
    drop_database(server_url=database_url, name=name)
    open_session.close()
    assert not _exists(database_url, name)
    drop_database(server_url=database_url, name=name)  # gone already: nothing to do, no error
