"""The API keeps the predictions partitions: the months ahead exist once it has started."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text

from db.session import get_engine


def _sql(statement: str, **params: Any) -> list[Any]:
    with get_engine().begin() as connection:
        result = connection.execute(text(statement), params)
        return list(result) if result.returns_rows else []


def test_the_api_creates_the_months_ahead_at_start(
    api_with_env: Callable[[dict[str, str]], str], clean_db: str,
) -> None:
    now = datetime.now(UTC)
    ahead = (now.year * 12 + now.month - 1) + 7
    wanted = f"predictions_p{ahead // 12}_{ahead % 12 + 1:02d}"
    _sql(f'DROP TABLE IF EXISTS "{wanted}"')

    api = api_with_env({"PREDICTIONS_PARTITIONS_AHEAD": "7"})

    deadline = time.monotonic() + 30
    while not _sql("SELECT to_regclass(:name)", name=wanted)[0][0] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _sql("SELECT to_regclass(:name)::text", name=wanted) == [(wanted,)]
    assert httpx.get(f"{api}/health").status_code == 200
