"""Shared by the API benches: a scratch database, sample records, the real API, timing helpers.

The benches never touch the `churn` database nor the checkout's embedded server: each works in
its own `churn_bench_<pid>` database on DATABASE_URL's server or, when it is unset, on a server of
the bench process's own (`db.embedded.throwaway_server`: a free port, a temporary data folder,
stopped and deleted when the process ends, even when it is killed).
"""

from __future__ import annotations

import atexit
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import datetime
from functools import cache
from typing import Any

import psycopg
from sqlalchemy import Index, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateIndex

from core.settings import REPO_ROOT, DatabaseSettings
from db import embedded
from db import session as db_session
from db.admin import create_database, drop_database
from db.manage import migrate
from db.models import Prediction
from model.contract import FEATURE_NAMES, IDENTIFIER
from model.data import load_dataset
from tests.api_server import start_api_server

__all__ = ["REPO_ROOT", "bench_server_url", "bulk_insert_predictions", "libpq_url", "median_seconds",
           "percentile", "sample_records", "scratch_database", "start_api_server", "timed"]


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as psycopg wants it (no `+psycopg` driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@cache
def _own_server_url() -> str:
    """This process's own server, started on first use and stopped when the process exits."""
    stack = ExitStack()
    atexit.register(stack.close)
    return stack.enter_context(embedded.throwaway_server())


def bench_server_url() -> str:
    """The server the benches work on: DATABASE_URL's, or this process's own."""
    return DatabaseSettings().database_url or _own_server_url()


@contextmanager
def scratch_database(suffix: str = "") -> Iterator[str]:
    """A migrated, empty database of its own, exported as DATABASE_URL; dropped afterwards."""
    server = bench_server_url()
    name = f"churn_bench_{os.getpid()}{suffix}"
    url = create_database(server_url=server, name=name, replace=True)
    os.environ["DATABASE_URL"] = url
    db_session.get_engine.cache_clear()
    db_session._session_factory.cache_clear()
    try:
        migrate(url)
        yield url
    finally:
        db_session.get_engine().dispose()
        drop_database(server_url=server, name=name)


def sample_records(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """`count` real customers (drawn with replacement) as JSON-ready records, with their id."""
    data = load_dataset()[[IDENTIFIER, *FEATURE_NAMES]]
    sample = data.sample(count, replace=True, random_state=seed)
    return [
        {key: (None if value != value else value) for key, value in row.items()}  # NaN -> null
        for row in sample.to_dict("records")
    ]


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    return statistics.median(timed(fn) for _ in range(repeats))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def bulk_insert_predictions(
    conn: psycopg.Connection, insert: str, params: Mapping[str, Any], first_at: datetime, last_at: datetime,
) -> None:
    """Run `insert` (an INSERT INTO predictions ... SELECT ... FROM generate_series) fast, leaving
    the table as production has it: its monthly partitions, the same indexes, analyzed.

    The months of [first_at, last_at] get their partitions first (the rows would otherwise all go
    to the default partition); the secondary indexes are dropped during the load and built again
    from db/models.py afterwards, which is several times faster than maintaining them row by row.
    On a database without partitions (an older schema) only the index step applies. `conn` is
    autocommit.
    """
    partitioned = conn.execute("SELECT to_regproc('ensure_predictions_partitions') IS NOT NULL").fetchone()
    if partitioned and partitioned[0]:
        conn.execute("SELECT ensure_predictions_partitions(%s, %s)", (first_at, last_at))
    table: Table = Prediction.__table__  # type: ignore[assignment]  # a Table at run time
    indexes: list[Index] = sorted(table.indexes, key=lambda index: str(index.name))
    for index in indexes:
        conn.execute(f'DROP INDEX "{index.name}"')
    conn.execute(insert, params)
    conn.execute("SET maintenance_work_mem = '256MB'")
    for index in indexes:
        conn.execute(str(CreateIndex(index).compile(dialect=postgresql.dialect())))
    conn.execute("VACUUM ANALYZE predictions")
