"""Fixtures of the core tests: the API client is tested against the real API (the webapp's fixtures)."""

from tests.api_server import api_url  # noqa: F401  (the real API, uvicorn)
from tests.webapp.conftest import webapp_env  # noqa: F401  (API_URL pointed at it, empty tables)
