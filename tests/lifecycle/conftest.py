"""Fixtures of the lifecycle tests: the real MLflow server (and the API's, from tests/api_server.py)."""

from tests.mlflow_server import mlflow_url, registry_settings  # noqa: F401  (shared fixtures)
