"""Creating and dropping whole databases on a server: the one place that runs CREATE DATABASE.

The application's database (embedded server), Airflow's metadata database, the per-session test
databases and the benchmarks' scratch databases are all made here. Both functions connect to the
server's `postgres` maintenance database with the credentials of the URL they are given (a role
allowed to create databases), outside any transaction, as PostgreSQL requires for these commands.
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url


def maintenance_conninfo(url: str) -> str:
    """The libpq URL of the `postgres` database on the server of `url` (any SQLAlchemy URL)."""
    maintenance = make_url(url).set(drivername="postgresql", database="postgres")
    return maintenance.render_as_string(hide_password=False)


def database_url_on(url: str, name: str) -> str:
    """`url` (SQLAlchemy form, driver kept) pointing at database `name` of the same server."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def create_database(*, server_url: str, name: str, replace: bool = False) -> str:
    """Create database `name` on the server of `server_url` when it is missing; return its URL.

    An existing database is kept as it is (creating is idempotent), unless `replace` is true: then
    it is dropped first, sessions and all (tests and benchmarks start from an empty database).
    The returned URL is `server_url` with the database name replaced (same driver, same user).
    Raises psycopg.Error when the server is unreachable or the role may not create databases.
    """
    with psycopg.connect(maintenance_conninfo(server_url), autocommit=True) as connection:
        if replace:
            connection.execute(_drop_statement(name))
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url_on(server_url, name)


def drop_database(*, server_url: str, name: str) -> None:
    """Drop database `name` of the server of `server_url` when it exists, closing its sessions.

    Raises psycopg.Error when the server is unreachable or the role may not drop it.
    """
    with psycopg.connect(maintenance_conninfo(server_url), autocommit=True) as connection:
        connection.execute(_drop_statement(name))


def _drop_statement(name: str) -> sql.Composed:
    # WITH (FORCE) (PostgreSQL 13+): sessions still open on it (a pool, a crashed test) are ended
    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
