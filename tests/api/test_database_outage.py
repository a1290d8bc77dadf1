"""With the database stopped the API answers 503 and stores nothing; it recovers by itself after.

Uses a throwaway embedded PostgreSQL on its own port and data folder: the shared server is never
stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.settings import DatabaseSettings
from db import embedded
from db.manage import migrate
from tests.api_server import free_port, start_api_server
from tests.factories import customer_record


@pytest.fixture
def throwaway_database(tmp_path: Path) -> Iterator[DatabaseSettings]:
    settings = DatabaseSettings(
        _env_file=None, database_url=None, embedded_pg_dir=tmp_path / "pg",
        embedded_pg_port=free_port("127.0.0.1"), embedded_pg_database="outage",
    )
    migrate(embedded.ensure_running(settings))
    yield settings
    embedded.stop(settings)


def test_503_while_the_database_is_down_and_200_again_after(throwaway_database: DatabaseSettings) -> None:
    url = embedded.server_url(throwaway_database)
    api, stop_api = start_api_server(url)
    body = {"source": "webapp", "records": [customer_record()]}
    window = {"start_date": "2026-01-01", "end_date": "2030-01-01"}
    try:
        first = httpx.post(f"{api}/predict", json=body)
        assert first.status_code == 200

        assert embedded.stop(throwaway_database)
        down = httpx.post(f"{api}/predict", json=body)
        assert down.status_code == 503
        assert "database is unavailable" in down.json()["detail"]
        assert httpx.get(f"{api}/past-predictions", params=window).status_code == 503
        health = httpx.get(f"{api}/health")
        assert (health.status_code, health.json()["database"], health.json()["model"]) == (503, "down", "ok")

        embedded.ensure_running(throwaway_database)
        assert httpx.get(f"{api}/health").json()["status"] == "ok"
        again = httpx.post(f"{api}/predict", json=body)
        assert again.status_code == 200
        history = httpx.get(f"{api}/past-predictions", params=window).json()
        # the request refused during the outage left no trace: the first and the last are stored
        assert history["total"] == 2
        assert {item["id"] for item in history["items"]} == {
            first.json()["predictions"][0]["id"], again.json()["predictions"][0]["id"]
        }
    finally:
        stop_api()
