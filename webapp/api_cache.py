"""The webapp's Streamlit caches over the API client: one client per API address, GET /model with a TTL.

The cache keys carry the address and token, so a changed API_URL (tests, a redeploy) never
reuses a client or a schema fetched from another API.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import streamlit as st

from core.api_client import ChurnApiClient
from core.settings import ApiClientSettings, WebappSettings


def client_settings() -> ApiClientSettings:
    """Where the API is, read afresh (tests change API_URL between runs)."""
    return ApiClientSettings()


def settings() -> WebappSettings:
    return WebappSettings()


@st.cache_resource(show_spinner=False)
def _client(base_url: str, token: str | None, timeout_seconds: float) -> ChurnApiClient:
    return ChurnApiClient(base_url=base_url, token=token, timeout_seconds=timeout_seconds)


def api_client() -> ChurnApiClient:
    config = client_settings()
    return _client(config.api_url, config.token_value(), config.api_timeout_seconds)


@st.cache_data(show_spinner="Loading the model description...", ttl=WebappSettings().model_info_ttl_seconds)
def _model_info(base_url: str, token: str | None, timeout_seconds: float) -> dict[str, Any]:
    return _client(base_url, token, timeout_seconds).model_info()


def model_info() -> dict[str, Any]:
    """GET /model, cached; raises ApiError (never cached) when the API cannot answer."""
    config = client_settings()
    return _model_info(config.api_url, config.token_value(), config.api_timeout_seconds)


def served_model() -> dict[str, Any]:
    """GET /model now, never cached: what answers the next prediction (the page's caption must not
    name a version the API replaced minutes ago). Raises ApiError."""
    return api_client().model_info()


@st.cache_data(show_spinner="Loading the history...", ttl=WebappSettings().history_ttl_seconds)
def _history_for_chart(
    base_url: str, token: str | None, timeout_seconds: float,
    start_date: date, end_date: date, source: str, max_rows: int, known_total: int,
) -> tuple[int, list[dict[str, Any]]]:
    client = _client(base_url, token, timeout_seconds)
    return fetch_history(client, start_date=start_date, end_date=end_date, source=source, max_rows=max_rows)


def history_for_chart(
    start_date: date, end_date: date, source: str, known_total: int,
) -> tuple[int, list[dict[str, Any]]]:
    """(total, newest predictions up to the chart cap) for the range.

    `known_total` (the count the table just read) is part of the cache key: paging through the
    table reuses the chart's rows, a new prediction in the range fetches them again.
    """
    config = client_settings()
    return _history_for_chart(
        config.api_url, config.token_value(), config.api_timeout_seconds,
        start_date, end_date, source, settings().history_chart_max_rows, known_total,
    )


# Page size used to gather the chart's rows: large pages, few requests.
HISTORY_FETCH_PAGE = 1000


def fetch_history(
    client: ChurnApiClient, *, start_date: date, end_date: date, source: str, max_rows: int,
) -> tuple[int, list[dict[str, Any]]]:
    """Walk the pages of GET /past-predictions until `max_rows` items or the end."""
    items: list[dict[str, Any]] = []
    total = 0
    while len(items) < max_rows:
        limit = min(HISTORY_FETCH_PAGE, max_rows - len(items))
        page = client.past_predictions(
            start_date=start_date, end_date=end_date, source=source, limit=limit, offset=len(items),
        )
        total = int(page.get("total", 0))
        batch = page.get("items", [])
        items.extend(batch)
        if not batch or len(items) >= total:
            break
    return total, items
