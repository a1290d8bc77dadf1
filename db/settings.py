"""Database settings, read from the environment (and `.env` when present)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class DatabaseSettings(BaseSettings):
    """Where the database is. With no DATABASE_URL an embedded server is started (db/embedded.py)."""

    model_config = SettingsConfigDict(env_file=REPO_ROOT / ".env", extra="ignore")

    database_url: str | None = None
    embedded_pg_dir: Path = REPO_ROOT / ".local" / "postgres"
    embedded_pg_host: str = "127.0.0.1"
    embedded_pg_port: int = 54329
    embedded_pg_database: str = "churn"


class ReadonlyRoleSettings(BaseSettings):
    """The read-only role Grafana uses; its password has no default and must be given."""

    model_config = SettingsConfigDict(env_file=REPO_ROOT / ".env", extra="ignore")

    grafana_db_user: str = "grafana_reader"
    grafana_db_password: SecretStr
