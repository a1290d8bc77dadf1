"""Fixtures of the API tests: the real API over HTTP and direct looks into the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from db import session as db_session
from tests.api_server import api_url, start_api_server  # noqa: F401  (api_url: the shared fixture)


def stored_rows(where: str = "TRUE", **params: Any) -> list[dict[str, Any]]:
    """Predictions as stored in PostgreSQL, oldest id first (the truth the API must match)."""
    with db_session.get_engine().connect() as connection:
        rows = connection.execute(text(f"SELECT * FROM predictions WHERE {where} ORDER BY id"), params)
        return [dict(row) for row in rows.mappings()]


def stored_count() -> int:
    with db_session.get_engine().connect() as connection:
        return connection.execute(text("SELECT count(*) FROM predictions")).scalar_one()


@pytest.fixture
def api_with_env(database_url: str) -> Iterator[Callable[[dict[str, str]], str]]:
    """Start a real API (uvicorn) with extra environment (API_TOKEN, limits...); stopped after the test."""
    stops: list[Callable[[], None]] = []

    def start(env: dict[str, str]) -> str:
        base_url, stop = start_api_server(database_url, env=env)
        stops.append(stop)
        return base_url

    yield start
    for stop in stops:
        stop()
