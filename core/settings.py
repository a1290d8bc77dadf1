"""Every setting of the stack, declared once: small classes per concern, read from the environment.

Each variable is a field of exactly one class below (an ingestion job that needs the data folders
and the reports site combines those two classes, it does not declare them again). Values come from
the environment, then `.env` at the repository root when present, then the defaults here, which
are the local (`make run`) ones; docker-compose.yml sets the container ones. An empty variable
(`API_TOKEN=` in a .env or a compose file) means "unset": `env_ignore_empty=True`.
`.env.example` lists every variable (a test enforces it).

The webapp imports this module too: it holds no secret of another service, each service only
instantiates the classes it needs, so the webapp never needs the database password.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository root: the default home of the data folders, `.local/` state and `.env`."""

LOCAL_STATE_DIR = REPO_ROOT / ".local"
"""Git-ignored run-time state of `make run` (embedded PostgreSQL, Airflow home, logs)."""


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=REPO_ROOT / ".env", env_ignore_empty=True, extra="ignore")


# --- storage ---------------------------------------------------------------------------------------

class DatabaseSettings(_Settings):
    """Where the database is. With no DATABASE_URL an embedded server is started (db/embedded.py)."""

    database_url: str | None = None
    embedded_pg_dir: Path = LOCAL_STATE_DIR / "postgres"
    embedded_pg_host: str = "127.0.0.1"
    embedded_pg_port: int = 54329
    embedded_pg_database: str = "churn"
    # Connections each process keeps open. The API runs at most this many requests at once in its
    # worker threads (more wait their turn on the event loop, never refused for want of a
    # connection); a few more connections serve its own background threads, and up to 4 its
    # one-record writes awaited on the event loop (db/session.py).
    database_pool_size: int = Field(default=20, ge=1)


class PredictionStorageSettings(_Settings):
    """How the partitioned predictions table is kept (db/partitions.py): months created ahead, and
    how long predictions are kept."""

    # monthly partitions kept ready beyond the current month (created at API start, then hourly)
    predictions_partitions_ahead: int = Field(default=3, ge=1)
    # unset: keep every prediction; set: drop each monthly partition once all its rows are older
    # than this many days (whole partitions, never row by row; so up to a month more is kept)
    predictions_retention_days: int | None = Field(default=None, ge=1)


class ReadonlyRoleSettings(_Settings):
    """The read-only role Grafana uses; its password has no default and must be given."""

    grafana_db_user: str = "grafana_reader"
    grafana_db_password: SecretStr


class DataFolderSettings(_Settings):
    """Raw files arrive in `raw_data_dir`; ingestion sorts their rows into good and bad data."""

    raw_data_dir: Path = REPO_ROOT / "raw-data"
    good_data_dir: Path = REPO_ROOT / "good_data"
    bad_data_dir: Path = REPO_ROOT / "bad_data"

    def all(self) -> tuple[Path, Path, Path]:
        """Every folder a data file name must be unique across."""
        return (self.raw_data_dir, self.good_data_dir, self.bad_data_dir)


class ReportSettings(_Settings):
    """Data Docs validation reports: written to `reports_dir`, served by the API at the base URL."""

    reports_dir: Path = REPO_ROOT / "reports"
    # what a browser opens: alert cards and dashboards link here
    reports_base_url: str = "http://127.0.0.1:8000/reports"


# --- the model service and its clients -------------------------------------------------------------

class ApiAccessSettings(_Settings):
    """The API's bearer token, shared by the API (which checks it) and its clients (which send it).

    `make run` and compose generate one on first start (launcher/api_token.py) and hand it to every
    service as API_TOKEN_FILE; API_TOKEN, when set, wins over the file.
    """

    # unset (and no API_TOKEN_FILE): the API is open; set: every endpoint but /health (and
    # /health/live, /health/ready), the OpenAPI docs and /reports wants `Bearer <token>`
    api_token: SecretStr | None = None
    # a file holding the token (make run: .local/api-token; compose: the api-token volume)
    api_token_file: Path | None = None

    def token_value(self) -> str | None:
        """The token as plain text for an Authorization header, None when the API is open.

        Raises:
            RuntimeError: API_TOKEN_FILE is set but missing or empty (never silently open).
        """
        if self.api_token:
            return self.api_token.get_secret_value()
        if self.api_token_file is None:
            return None
        try:
            token = self.api_token_file.read_text().strip()
        except OSError as error:
            raise RuntimeError(f"API_TOKEN_FILE {self.api_token_file} cannot be read: {error}") from error
        if not token:
            raise RuntimeError(f"API_TOKEN_FILE {self.api_token_file} is empty")
        return token


class ApiServerSettings(ApiAccessSettings, ReportSettings, PredictionStorageSettings):
    """Where the API listens, how much one request may carry, and the reports folder it serves."""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # uvicorn worker processes. 1 keeps /metrics whole (one process, one set of counters) and one
    # registry follower; more use more cores for concurrent clients (docs/design/partitions.md)
    api_workers: int = Field(default=1, ge=1)
    max_records_per_request: int = Field(default=10_000, ge=1)
    model_artifacts_dir: Path = REPO_ROOT / "model" / "artifacts"


class ApiClientSettings(ApiAccessSettings):
    """How the webapp and the prediction job call the API (core/api_client.py)."""

    api_url: str = "http://127.0.0.1:8000"
    # One API call, end to end: a 1,000-row chunk takes well under a second, so this means stuck.
    # (REQUEST_TIMEOUT_SECONDS, the webapp's former name, is still read.)
    api_timeout_seconds: float = Field(
        default=60.0, gt=0,
        validation_alias=AliasChoices("api_timeout_seconds", "request_timeout_seconds"),
    )
    # Rows per POST /predict, from an uploaded file or a good_data file: under the API's
    # MAX_RECORDS_PER_REQUEST, small enough for a smooth progress bar in the webapp.
    # (CHUNK_SIZE, the prediction job's former name, is still read.)
    predict_chunk_size: int = Field(
        default=500, ge=1, validation_alias=AliasChoices("predict_chunk_size", "chunk_size"),
    )


# --- the webapp -------------------------------------------------------------------------------------

class WebappSettings(_Settings):
    """Where the webapp listens and how long it keeps what it fetched."""

    # 0.0.0.0 in compose, where the browser reaches the container through a published port
    webapp_host: str = "127.0.0.1"
    webapp_port: int = 8501
    # GET /model changes only when a new model is deployed.
    model_info_ttl_seconds: int = Field(default=300, ge=0)
    # The history chart's rows are also refetched whenever the range's count changes.
    history_ttl_seconds: int = Field(default=300, ge=0)
    # Predictions fetched to draw the history chart; beyond it the chart shows the newest ones.
    history_chart_max_rows: int = Field(default=20_000, ge=1)


# --- the jobs ---------------------------------------------------------------------------------------

class AlertSettings(_Settings):
    """Where ingestion alerts go: a Teams Workflows webhook (Adaptive Card), retried."""

    # Unset: alerts are logged and recorded as not sent. A secret: never commit it.
    teams_webhook_url: SecretStr | None = None
    teams_timeout_seconds: float = 10.0
    teams_attempts: int = 3
    teams_backoff_seconds: float = 1.0


class IngestionSettings(DataFolderSettings, ReportSettings, AlertSettings):
    """Everything the `data_ingestion` DAG needs: the folders, the reports site, the alerts."""

    # A claim older than this belongs to a crashed run and goes back to raw-data. Longer than
    # any honest run (validate + split of a 10,000-row file takes about a second).
    claim_timeout_seconds: float = 600.0
    # A raw file is claimed only once it has not changed (size, modification time) for this long:
    # a file still being copied in is left for a later run. Raise it for slow network copies.
    raw_file_settle_seconds: float = 10.0
    # Rows read, validated and split at a time: memory grows with it (about 2-3 KB a row in
    # flight at the contract's 21 columns), never with the file. Any value gives the same outcome
    # and outputs. 50,000 keeps a 10,000,000-row file under 1 GB (bench/bench_ingestion.py).
    ingestion_chunk_rows: int = Field(default=50_000, ge=1)

    @property
    def claims_dir(self) -> Path:
        """Claimed files wait here; hidden, so that a folder listing of raw-data skips it."""
        return self.raw_data_dir / ".claims"


# --- monitoring -------------------------------------------------------------------------------------

class DriftMonitoringSettings(_Settings):
    """The thresholds dashboards and alert rules apply (stored in `monitoring_settings` at baseline load).

    model/monitoring.py explains each (and takes its defaults from here).
    """

    # chance that a window with no drift raises any feature's drift alert (Sidak over the features)
    drift_false_alarm_rate: float = Field(default=0.01, gt=0, lt=1)
    # smallest window (rows) that gets a drift verdict or a performance estimate
    drift_min_rows: int = Field(default=100, ge=1)
    # share of empty values from which a feature "arrives mostly empty"
    empty_share_alert: float = Field(default=0.5, gt=0, le=1)
    # a feature empty in under this share of training rows is "rarely empty" (the empties alert watches it)
    rarely_empty_share: float = Field(default=0.01, ge=0, lt=1)


# --- the launchers ----------------------------------------------------------------------------------

class AirflowSettings(_Settings):
    """Where the local Airflow lives, its metadata database and where its API server listens."""

    airflow_home: Path = LOCAL_STATE_DIR / "airflow"
    airflow_dags_folder: Path = REPO_ROOT / "dags"
    airflow_api_host: str = "127.0.0.1"
    airflow_api_port: int = 8080
    # unset: a random secret is generated once and kept in AIRFLOW_HOME, shared by every component
    airflow_jwt_secret: str | None = None
    # Airflow's metadata lives in its own database on the application's PostgreSQL server
    airflow_database: str = "airflow"

    @property
    def api_server_url(self) -> str:
        return f"http://{self.airflow_api_host}:{self.airflow_api_port}"


class GrafanaSettings(_Settings):
    """Where Grafana listens (only when a `grafana` server binary is on PATH, or in compose)."""

    grafana_host: str = "127.0.0.1"
    grafana_port: int = 3000
    grafana_admin_user: str = "admin"
    grafana_admin_password: SecretStr = SecretStr("admin")
    grafana_home_path: Path | None = None  # the folder holding conf/defaults.ini; guessed when unset
    grafana_data_dir: Path = LOCAL_STATE_DIR / "grafana"
    grafana_provisioning_dir: Path = REPO_ROOT / "grafana" / "provisioning"
    # the Prometheus datasource (uid churn-prometheus); unset: make run's Prometheus (PrometheusSettings)
    prometheus_url: str | None = None


class PrometheusSettings(_Settings):
    """The Prometheus server `make run` starts when a `prometheus` binary is on PATH (Debian's package).

    It scrapes the API's /metrics with the API token; its configuration is rendered at launch from
    prometheus/prometheus.yml into the data folder (launcher/services.py).
    """

    prometheus_host: str = "127.0.0.1"
    prometheus_port: int = 9090
    prometheus_data_dir: Path = LOCAL_STATE_DIR / "prometheus"
    # how often the API's /metrics is scraped (the alert rules' windows assume 15 s or less)
    prometheus_scrape_interval_seconds: int = Field(default=15, ge=1)
    prometheus_retention: str = "15d"

    @property
    def url(self) -> str:
        """The address a browser or Grafana on this machine uses."""
        host = "127.0.0.1" if self.prometheus_host in ("0.0.0.0", "::", "") else self.prometheus_host
        return f"http://{host}:{self.prometheus_port}"


class LauncherSettings(_Settings):
    """How `make run` prepares and supervises the stack."""

    local_logs_dir: Path = LOCAL_STATE_DIR / "logs"
    startup_timeout_seconds: float = Field(default=240, gt=0)
    # the Airflow scheduler finishes its running tasks after SIGTERM; give it this long
    stop_grace_seconds: float = Field(default=20, gt=0)
    # false: start with an empty raw-data and drop your own files in
    seed_raw_data: bool = True
    # false: no label files are written for predicted customers (scripts/seed_labels.py)
    seed_labels: bool = True
    # true: once the stack is up, run the concept-drift scenario (scripts/concept_drift_scenario.py)
    run_concept_drift_scenario: bool = False


class PredictionJobSettings(DataFolderSettings, ApiClientSettings):
    """Everything the `prediction_job` DAG needs: good_data, and how to call the API."""

    # Rows per POST /predict from the scheduled job (the file is read this many rows at a time):
    # at most the API's MAX_RECORDS_PER_REQUEST; larger requests cost less per row.
    scheduled_predict_chunk_size: int = Field(default=10_000, ge=1)


# --- the model registry and the lifecycle -----------------------------------------------------------

class RegistrySettings(_Settings):
    """Where the MLflow tracking server is and what the model is called in it (model/registry.py)."""

    # unset: no registry (training writes local artifacts only; the API serves MODEL_ARTIFACTS_DIR)
    mlflow_tracking_uri: str | None = None
    mlflow_model_name: str = "churn"
    mlflow_experiment: str = "churn"
    # the API checks the champion and challenger aliases this often and switches without a restart
    model_poll_seconds: float = Field(default=10.0, gt=0)
    # MLflow's own variables, bounded for the API and its registry follower (MLflow's defaults retry
    # with backoff for minutes): seconds per HTTP request, and retries after a failed one
    mlflow_http_request_timeout: int = Field(default=5, ge=1)
    mlflow_http_request_max_retries: int = Field(default=0, ge=0)
    # the API keeps every version it admitted here, and the champion it last served: with the
    # registry down at start it serves that one (else MODEL_ARTIFACTS_DIR)
    model_cache_dir: Path = LOCAL_STATE_DIR / "model-cache"
    # at start, the API waits this long for the registry's first answer before it serves the
    # cached or local model (the follower keeps trying in the background)
    model_startup_wait_seconds: float = Field(default=15.0, ge=0)

    @property
    def enabled(self) -> bool:
        return bool(self.mlflow_tracking_uri)


class MlflowServerSettings(_Settings):
    """The MLflow tracking server: its address, its database on the project's PostgreSQL, its artifacts."""

    mlflow_host: str = "127.0.0.1"
    mlflow_port: int = 5000
    # the backend store: this database on the application's server (DATABASE_URL's), created by
    # `python -m db.manage setup`
    mlflow_database: str = "mlflow"
    mlflow_artifacts_dir: Path = LOCAL_STATE_DIR / "mlflow-artifacts"
    # Host headers the server accepts besides localhost and private addresses (compose: mlflow:*)
    mlflow_allowed_hosts: str | None = None

    @property
    def url(self) -> str:
        """The address clients use (0.0.0.0, where a container listens, is not one)."""
        host = "127.0.0.1" if self.mlflow_host in ("0.0.0.0", "::", "") else self.mlflow_host
        return f"http://{host}:{self.mlflow_port}"


class LabelSettings(_Settings):
    """Where label files (outcomes) arrive, and where their bad rows are set aside."""

    labels_dir: Path = REPO_ROOT / "labels"
    labels_bad_dir: Path = REPO_ROOT / "bad_data" / "labels"
    # the IANA zone (zoneinfo) of label times written without an offset, and of date-only times
    labels_timezone: str = "UTC"

    @field_validator("labels_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"LABELS_TIMEZONE={value!r} is not an IANA time zone "
                             "(e.g. UTC, Asia/Tokyo, America/New_York)") from error
        return value

    @property
    def processed_dir(self) -> Path:
        """Ingested files are moved here (hidden: the DAG's listing skips it)."""
        return self.labels_dir / ".processed"


class LabelSeedSettings(LabelSettings):
    """`make run`'s stand-in for outcomes coming back: label files for customers already predicted."""

    # a customer's outcome becomes known this long after its (latest) prediction
    label_delay_seconds: float = Field(default=300, ge=0)
    # the seeding job looks for newly predictable outcomes this often
    label_seed_every_seconds: float = Field(default=60, gt=0)


class RealizedPerformanceSettings(_Settings):
    """The window of realized performance (minutes of prediction time; a day is 1440), and when a
    prediction's outcome counts as settled (jobs/realized.py's `is_settled`)."""

    realized_window_minutes: int = Field(default=60, ge=1)
    # every outcome of a prediction is known this many days after it (churners at once, stayers at
    # renewal: a monthly bill); older predictions are settled
    label_horizon_days: float = Field(default=30, ge=0)
    # a window is settled early once this share of its predictions has an outcome
    settled_min_coverage: float = Field(default=0.95, gt=0, le=1)


class LifecycleSettings(RealizedPerformanceSettings):
    """When to retrain and what the promotion gate demands (jobs/lifecycle.py, model/gate.py)."""

    # retrain once this many new labels (joined to a prediction) arrived since the last retrain attempt
    retrain_min_new_labels: int = Field(default=1000, ge=1)
    # after a challenger is rejected, no automatic retrain for this long
    retrain_backoff_minutes: float = Field(default=1440, ge=0)
    gate_metric: str = "f1"
    # fewest labelled customers scored by both models before the gate judges (fewer: wait)
    gate_min_rows: int = Field(default=200, ge=1)
    # the gain (challenger - champion, on GATE_METRIC) the paired test must show beyond chance: its
    # null hypothesis is "gain <= margin" (model/gate.py)
    gate_min_margin: float = 0.01
    # chance that the gate promotes a challenger no better than the champion by the margin: the
    # one-sided level of the paired bootstrap test (bench/gate_power.py measures it)
    gate_false_promotion_rate: float = Field(default=0.05, gt=0, lt=0.5)
    # resamples of the paired bootstrap (its p-value is a multiple of 1 / (draws + 1))
    gate_bootstrap_draws: int = Field(default=2000, ge=100)
    # a challenger losing by more than this on a segment of at least GATE_MIN_SEGMENT_ROWS is refused
    gate_segment_tolerance: float = Field(default=0.05, ge=0)
    gate_min_segment_rows: int = Field(default=30, ge=1)
