"""core/api_client.py: the one client of the API, against the real API over HTTP."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from core.api_client import ApiInputError, ApiRejectedError, ApiUnavailableError, ChurnApiClient
from model.contract import default_record
from tests.api_server import start_api_server
from tests.webapp.conftest import stored_predictions, unused_url


def test_model_info_publishes_the_record_schema(webapp_env: str) -> None:
    info = ChurnApiClient(webapp_env).model_info()
    assert info["record_schema"]["properties"]["contract"]["enum"][0] == "Month-to-month"


def test_predict_and_read_back(webapp_env: str) -> None:
    client = ChurnApiClient(webapp_env)
    answer = client.predict([default_record(), default_record()], file_name="f.csv")
    assert [p["features"]["tenure"] for p in answer["predictions"]] == [12, 12]
    today = datetime.now(UTC).date()
    page = client.past_predictions(
        start_date=today - timedelta(days=1), end_date=today + timedelta(days=1), source="webapp",
        limit=1, offset=0,
    )
    assert page["total"] == 2 and len(page["items"]) == 1 and page["items"][0]["file_name"] == "f.csv"


def test_refused_records_come_back_with_their_row_and_field(webapp_env: str) -> None:
    bad = {**default_record(), "tenure": 60, "monthly_charges": 100.0, "total_charges": 10.0}
    with pytest.raises(ApiInputError) as caught:
        ChurnApiClient(webapp_env).predict([default_record(), bad])
    assert [(p.row, p.field) for p in caught.value.problems] == [(1, "total_charges")]
    assert stored_predictions() == 0


def test_api_down_is_a_readable_error(webapp_env: str) -> None:
    nobody = unused_url(webapp_env)
    with pytest.raises(ApiUnavailableError, match="cannot be reached") as caught:
        ChurnApiClient(nobody).model_info()
    assert nobody in caught.value.message


class SlowHandler(http.server.BaseHTTPRequestHandler):
    """Answers after 2 s: the API stuck behind a slow database, as the webapp sees it."""

    def do_GET(self) -> None:
        time.sleep(2)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_server(webapp_env: str) -> Iterator[str]:
    host = urlsplit(webapp_env).hostname or ""
    server = http.server.ThreadingHTTPServer((host, 0), SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{host}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_slow_api_is_a_readable_timeout(slow_server: str) -> None:
    with pytest.raises(ApiUnavailableError, match=r"did not answer within 0.5 s"):
        ChurnApiClient(slow_server, timeout_seconds=0.5).model_info()


def test_the_token_is_sent_and_a_missing_one_is_explained(database_url: str) -> None:
    base_url, stop = start_api_server(database_url, env={"API_TOKEN": "webapp-secret"})
    try:
        with pytest.raises(ApiRejectedError, match="valid API token") as caught:
            ChurnApiClient(base_url).model_info()
        assert caught.value.status == 401
        assert ChurnApiClient(base_url, token="webapp-secret").model_info()["model_version"]
    finally:
        stop()
