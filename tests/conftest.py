"""Shared fixtures: a real PostgreSQL database per test session, migrated with Alembic.

The server is the one in DATABASE_URL or, when unset, a server of the session's own
(`db.embedded.throwaway_server`: a free port, a temporary data folder, stopped and deleted at the
end, even when the session is killed), never the checkout's embedded server nor another
checkout's. Each pytest session works in its own database (`churn_test_<pid>`), dropped at the
end, so that parallel sessions on a DATABASE_URL server and the developer's own data never meet.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from sqlalchemy import text

from core.settings import DatabaseSettings
from db import embedded
from db import session as db_session
from db.admin import create_database, drop_database
from db.manage import load_baseline, migrate

RUNTIME_TABLES = (
    "predictions", "prediction_batches", "predicted_files", "ingestion_errors", "ingested_files",
    "labels", "label_files", "shadow_predictions", "promotion_decisions", "realized_performance",
    "retrain_attempts",
)


def fail_cannot_run(reason: str) -> None:
    """A test that cannot run fails, naming what is missing: never a silent skip, in CI or not."""
    pytest.fail(f"cannot run: {reason}")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with ExitStack() as own_server:
        server_url = DatabaseSettings().database_url or own_server.enter_context(embedded.throwaway_server())
        yield from _session_database(server_url)


def _session_database(server_url: str) -> Iterator[str]:
    name = f"churn_test_{os.getpid()}"
    url = create_database(server_url=server_url, name=name, replace=True)
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url  # subprocesses (uvicorn, Airflow tasks) inherit it
    db_session.get_engine.cache_clear()
    db_session._session_factory.cache_clear()
    migrate(url)
    load_baseline()
    yield url
    db_session.get_engine().dispose()
    db_session.get_engine.cache_clear()
    db_session._session_factory.cache_clear()
    if previous is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = previous
    drop_database(server_url=server_url, name=name)


@pytest.fixture
def clean_db(database_url: str) -> str:
    """An empty set of runtime tables (the training baseline stays loaded)."""
    with db_session.get_engine().begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(RUNTIME_TABLES)} RESTART IDENTITY CASCADE"))
    return database_url
