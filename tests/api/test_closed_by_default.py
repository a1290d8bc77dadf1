"""Closed by default, on the API's side: only JSON writes, and the token read from API_TOKEN_FILE
(the file `make run` and compose generate, launcher/api_token.py)."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from launcher.api_token import ensure_token_file
from tests.api.conftest import stored_count
from tests.api_server import start_api_server
from tests.factories import customer_record

BODY = {"source": "webapp", "records": [customer_record()]}


@pytest.mark.parametrize("content_type", [
    "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
    "multipart/form-data", None,
])
def test_a_post_that_is_not_json_is_refused_with_415_and_stores_nothing(
    api_url: str, clean_db: str, content_type: str | None,
) -> None:
    """What a web page may send without a CORS preflight (text/plain, forms) never reaches the model."""
    headers = {"content-type": content_type} if content_type else {}
    body = httpx.Response(200, json=BODY).content
    response = httpx.post(f"{api_url}/predict", content=body, headers=headers)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["detail"]
    assert stored_count() == 0


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON", "application/merge-patch+json"])
def test_json_content_types_are_accepted(api_url: str, clean_db: str, content_type: str) -> None:
    response = httpx.post(f"{api_url}/predict", content=httpx.Response(200, json=BODY).content,
                          headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    assert stored_count() == 1


def test_the_token_file_closes_the_api_and_the_token_in_it_opens_it(
    api_with_env: Callable[[dict[str, str]], str], clean_db: str, tmp_path: Path,
) -> None:
    token_file = tmp_path / "api-token"
    token = ensure_token_file(token_file)
    assert token is not None
    api = api_with_env({"API_TOKEN": "", "API_TOKEN_FILE": str(token_file)})

    assert httpx.post(f"{api}/predict", json=BODY).status_code == 401
    assert httpx.get(f"{api}/metrics").status_code == 401
    assert stored_count() == 0
    good = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{api}/predict", json=BODY, headers=good).status_code == 200
    assert httpx.get(f"{api}/metrics", headers=good).status_code == 200
    assert httpx.get(f"{api}/health").status_code == 200  # probes need no token


def test_an_unreadable_token_file_stops_the_api_at_start_instead_of_opening_it(
    database_url: str, tmp_path: Path,
) -> None:
    missing = tmp_path / "missing-token"
    with pytest.raises(RuntimeError, match=r"API_TOKEN_FILE .*missing-token"):
        start_api_server(database_url, env={"API_TOKEN": "", "API_TOKEN_FILE": str(missing)})


def test_the_token_file_is_created_once_owner_only_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "api-token"
    created = [ensure_token_file(path) for _ in range(3)]
    assert created[0] is not None and len(created[0]) >= 40 and created[1:] == [None, None]
    assert path.read_text().strip() == created[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["api-token"]  # no temporary left


def test_concurrent_first_starts_agree_on_one_token(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    results: list[str | None] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_token_file(path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    new = [token for token in results if token is not None]
    assert len(new) == 1 and path.read_text().strip() == new[0]
    assert os.listdir(tmp_path) == ["api-token"]
