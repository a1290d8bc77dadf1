"""Webapp settings, read from the environment (and `.env` when present)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class WebappSettings(BaseSettings):
    """Where the API is and how patiently the webapp talks to it."""

    model_config = SettingsConfigDict(env_file=REPO_ROOT / ".env", extra="ignore")

    api_url: str = "http://127.0.0.1:8000"
    api_token: SecretStr | None = None
    # 0.0.0.0 in compose, where the browser reaches the container through a published port
    webapp_host: str = "127.0.0.1"
    webapp_port: int = 8501
    # A 500-row chunk takes well under a second; 30 s means the API is stuck, not busy.
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    # Rows per POST /predict from an uploaded file: small enough for a smooth progress bar.
    predict_chunk_size: int = Field(default=500, ge=1)
    # GET /model changes only when a new model is deployed.
    model_info_ttl_seconds: int = Field(default=300, ge=0)
    # The history chart's rows are also refetched whenever the range's count changes.
    history_ttl_seconds: int = Field(default=300, ge=0)
    # Predictions fetched to draw the history chart; beyond it the chart shows the newest ones.
    history_chart_max_rows: int = Field(default=20_000, ge=1)
