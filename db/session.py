"""One engine per process and the session helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import psycopg
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core.settings import DatabaseSettings
from db import embedded


def database_url(settings: DatabaseSettings | None = None) -> str:
    """DATABASE_URL when set; otherwise the embedded server, started if it is down."""
    settings = settings or DatabaseSettings()
    return settings.database_url or embedded.ensure_running(settings)


def configured_database_url(settings: DatabaseSettings | None = None) -> str:
    """DATABASE_URL when set; otherwise the embedded server's URL, without starting or reaching it
    (for describing a command that a child process runs later, as `make run` does)."""
    settings = settings or DatabaseSettings()
    return settings.database_url or embedded.server_url(settings)


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    # pre_ping: a connection broken by a database restart is replaced instead of failing a request
    # connect_timeout: an unreachable host fails fast (503) instead of hanging a request
    return create_engine(
        database_url(), pool_pre_ping=True, pool_size=10, max_overflow=10,
        connect_args={"connect_timeout": 5},
    )


@lru_cache(maxsize=1)
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def new_session() -> Session:
    """A session of the process's one engine; the caller closes it (no connection until first use)."""
    return _session_factory()()


def get_session() -> Iterator[Session]:
    """A session per unit of work (FastAPI dependency style)."""
    with _session_factory()() as session:
        yield session


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error."""
    with _session_factory()() as session, session.begin():
        yield session


def database_reachable() -> bool:
    """True when the database answers a trivial query (GET /health); False on any database error."""
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, psycopg.Error):
        return False
    return True
