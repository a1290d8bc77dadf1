"""One engine per process and the session helpers."""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
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


BACKGROUND_CONNECTIONS = 4  # beyond the pool size: threads outside the API's request threads


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process's engine: DATABASE_POOL_SIZE connections (the API serves that many requests at
    once, api/main.py) plus a few for background threads, each checked at checkout without a round
    trip (`_replace_if_closed`); connect_timeout: an unreachable host fails fast (503)."""
    settings = DatabaseSettings()
    engine = create_engine(
        database_url(settings), pool_size=settings.database_pool_size,
        max_overflow=BACKGROUND_CONNECTIONS, connect_args={"connect_timeout": 5},
    )
    event.listen(engine, "checkout", _replace_if_closed)
    return engine


ASYNC_POOL_SIZE = 4  # connections of the event loop's engine (one-statement writes, one round trip)


def new_async_engine(pool_size: int = ASYNC_POOL_SIZE) -> AsyncEngine:
    """An engine for the event loop that creates it: psycopg's async connections, autocommit.

    For writes of one statement (db.predictions.store_one_prediction): awaited on the event loop,
    they need no worker thread, whose two wake-ups cost a one-record /predict about a fifth of its
    time (bench/bench_api_single.py). Each statement is its own transaction (AUTOCOMMIT): nothing
    else may use this engine. A few connections suffice: each is held for one round trip. The same
    checkout check and connect timeout as the process's engine; the caller disposes of it
    (`await engine.dispose()`) before its event loop ends.
    No reset on return: with autocommit there is no transaction to roll back, and the reset (an
    awaited rollback through SQLAlchemy's greenlet bridge) tripled the cost of a checkout (24 ->
    ~90 us). A connection returned mid-statement (a cancelled request) is not idle, and the
    checkout check replaces it.
    """
    engine = create_async_engine(
        database_url(), pool_size=pool_size, max_overflow=0, isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None, connect_args={"connect_timeout": 5},
    )
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


def _replace_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection the server has closed (a restart, an idle timeout) is replaced before
    use, so the request it was meant for does not fail.

    Replaces `pool_pre_ping`, which sent a query and waited for the answer on every checkout: an
    idle connection has nothing to read, so a readable socket means the server has sent its
    goodbye (or closed it). One poll of the socket, no round trip. A connection cut without a word
    (a host gone) is still found by its first query: that request fails (503) and SQLAlchemy
    replaces the pool's connections. Raising DisconnectionError makes the pool try a new one.
    """
    connection = getattr(dbapi_connection, "driver_connection", dbapi_connection)  # async: adapted
    pgconn = connection.pgconn
    if connection.closed or pgconn.status != psycopg.pq.ConnStatus.OK:
        raise DisconnectionError("connection closed")
    if pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:  # left mid-statement
        raise DisconnectionError("connection returned busy")
    readable, _, _ = select.select([pgconn.socket], [], [], 0)
    if readable:
        raise DisconnectionError("the server closed the connection")


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
