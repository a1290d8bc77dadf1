"""API settings, read from the environment (and `.env` when present)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from db.settings import REPO_ROOT
from model.train import ARTIFACTS_DIR


class ApiSettings(BaseSettings):
    """Where the API listens, who may call it and how much one request may carry."""

    model_config = SettingsConfigDict(env_file=REPO_ROOT / ".env", extra="ignore")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # unset: the API is open (local use); set: every endpoint but /health wants `Bearer <token>`
    api_token: SecretStr | None = None
    max_records_per_request: int = Field(default=10_000, ge=1)
    reports_dir: Path = REPO_ROOT / "reports"
    model_artifacts_dir: Path = ARTIFACTS_DIR

    @field_validator("api_token", mode="before")
    @classmethod
    def _empty_token_means_open(cls, value: object) -> object:
        # `API_TOKEN=` in a .env or compose file means "no token", not "the empty token"
        return None if value == "" else value
