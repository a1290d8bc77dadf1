"""Settings of the ingestion job: its folders, where reports go, where alerts go."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class IngestionSettings(BaseSettings):
    """Folders, the reports site and the Teams webhook of the `data_ingestion` DAG."""

    model_config = SettingsConfigDict(env_file=REPO_ROOT / ".env", extra="ignore")

    raw_data_dir: Path = REPO_ROOT / "raw-data"
    good_data_dir: Path = REPO_ROOT / "good_data"
    bad_data_dir: Path = REPO_ROOT / "bad_data"
    # Data Docs land here; the API serves this folder at REPORTS_BASE_URL.
    reports_dir: Path = REPO_ROOT / "reports"
    reports_base_url: str = "http://127.0.0.1:8000/reports"
    # Unset: alerts are logged and recorded as not sent. A secret: never commit it.
    teams_webhook_url: str | None = None
    teams_timeout_seconds: float = 10.0
    teams_attempts: int = 3
    teams_backoff_seconds: float = 1.0
    # A claim older than this belongs to a crashed run and goes back to raw-data. Longer than
    # any honest run (validate + split of a 10,000-row file takes about a second).
    claim_timeout_seconds: float = 600.0

    @property
    def claims_dir(self) -> Path:
        """Claimed files wait here; hidden, so that a folder listing of raw-data skips it."""
        return self.raw_data_dir / ".claims"
