"""Fixtures of the webapp tests: the real API over HTTP on the session's test database."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import pytest
import streamlit as st
from markdown_it import MarkdownIt
from sqlalchemy import text

from core.settings import REPO_ROOT
from db import session as db_session
from tests.api_server import api_url, free_port  # noqa: F401  (api_url: the real API, uvicorn)

APP_FILE = REPO_ROOT / "webapp" / "app.py"


MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
TAG = re.compile(r"<[^>]+>")


def rendered(body: str) -> str:
    """The HTML a Markdown body (st.error, st.caption...) becomes: CommonMark, as Streamlit renders."""
    return MARKDOWN.render(body)


def shown(body: str) -> str:
    """The text a user reads once the Markdown body is rendered (tags dropped, entities resolved)."""
    return html.unescape(TAG.sub("", rendered(body))).strip()


def stored_predictions(source: str = "webapp") -> int:
    """How many predictions of `source` PostgreSQL holds: the truth a rerun must not change."""
    with db_session.get_engine().connect() as connection:
        query = text("SELECT count(*) FROM predictions WHERE source = :source")
        return connection.execute(query, {"source": source}).scalar_one()


def unused_url(base_url: str) -> str:
    """An address on the API's host where nothing listens: the API is down."""
    host = urlsplit(base_url).hostname or ""
    return f"http://{host}:{free_port(host)}"


@pytest.fixture
def webapp_env(api_url: str, clean_db: str, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    """The webapp pointed at the real API, with empty prediction tables."""
    monkeypatch.setenv("API_URL", api_url)
    monkeypatch.delenv("API_TOKEN", raising=False)
    st.cache_data.clear()  # the truncated tables must not meet data cached by an earlier test
    return api_url
