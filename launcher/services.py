"""The one definition of every service command, shared by `make run` and docker compose.

    python -m launcher.services <service>           exec the service's command in this process
    python -m launcher.services --health <service>  exit 0 when the running service is healthy
    python -m launcher.services --list              print each service and its command

docker-compose.yml's `command:` lines and `launcher/run_local.py` both go through `command_for`,
so the two launchers cannot drift apart; compose's healthchecks call `--health`. Hosts and ports
come from settings classes (each service's own; the classes below for the rest), never from the
launchers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from core.settings import (
    REPO_ROOT,
    AirflowSettings,
    ApiServerSettings,
    GrafanaSettings,
    MlflowServerSettings,
    PrometheusSettings,
    WebappSettings,
)

PROMETHEUS_TEMPLATE = REPO_ROOT / "prometheus" / "prometheus.yml"


@dataclass(frozen=True)
class Service:
    """A runnable service: its argv, and what a person needs to reach it."""

    name: str
    argv: list[str]
    url: str | None = None  # what a person opens
    login: str | None = None
    long_running: bool = True
    health_url: str | None = None  # answers below 500 when the service serves
    health_argv: list[str] | None = None  # for the workers that serve no HTTP


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def _airflow(*args: str) -> list[str]:
    # the `airflow` console script beside this interpreter (the venv's, or the image's)
    beside = Path(sys.executable).with_name("airflow")
    return [str(beside) if beside.exists() else "airflow", *args]


def _browser_host(host: str) -> str:
    # 0.0.0.0 (compose) is where a server listens, not an address a browser opens
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def api() -> Service:
    s = ApiServerSettings()
    argv = _python("-m", "uvicorn", "api.main:app", "--host", s.api_host, "--port", str(s.api_port),
                   "--proxy-headers", "--workers", str(s.api_workers))
    base = f"http://{_browser_host(s.api_host)}:{s.api_port}"
    if s.api_token is not None:
        login = "Authorization: Bearer $API_TOKEN"
    elif s.api_token_file is not None:
        login = f"Authorization: Bearer $(cat {s.api_token_file})"
    else:
        login = "open (no API_TOKEN)"
    return Service("api", argv, url=f"{base}/docs", login=login, health_url=f"{base}/health")


def webapp() -> Service:
    webapp = WebappSettings()
    host, port = webapp.webapp_host, webapp.webapp_port
    argv = _python(
        "-m", "streamlit", "run", str(REPO_ROOT / "webapp" / "app.py"),
        "--server.address", host, "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    )
    url = f"http://{_browser_host(host)}:{port}"
    return Service("webapp", argv, url=url, login="none", health_url=f"{url}/_stcore/health")


def airflow_api_server() -> Service:
    s = AirflowSettings()
    argv = _airflow("api-server", "--host", s.airflow_api_host, "--port", str(s.airflow_api_port))
    url = f"http://{_browser_host(s.airflow_api_host)}:{s.airflow_api_port}"
    return Service(
        "airflow-api-server", argv, url=url,
        login="none: every visitor is admin (simple auth manager, all-admins)",
        health_url=f"{url}/api/v2/monitor/health",
    )


def _airflow_job(name: str, command: list[str], job_type: str) -> Service:
    # alive = a heartbeat from this host's job in the metadata database (Airflow's own check)
    check = _airflow("jobs", "check", "--job-type", job_type, "--local")
    return Service(name, _airflow(*command), health_argv=check)


# Airflow's log server (scheduler: WORKER_LOG_SERVER_PORT 8793, triggerer: 8794) listens on every
# interface, with no setting for the address (airflow/utils/serve_logs/core.py binds host "").
# The API server reads task logs from the shared log folder (local files under make run, the
# airflow-home volume in compose), so these two never start it: no socket beyond loopback.
SKIP_SERVE_LOGS = "--skip-serve-logs"


def airflow_scheduler() -> Service:
    return _airflow_job("airflow-scheduler", ["scheduler", SKIP_SERVE_LOGS], "SchedulerJob")


def airflow_dag_processor() -> Service:
    return _airflow_job("airflow-dag-processor", ["dag-processor"], "DagProcessorJob")


def airflow_triggerer() -> Service:
    return _airflow_job("airflow-triggerer", ["triggerer", SKIP_SERVE_LOGS], "TriggererJob")


def airflow_celery_worker() -> Service:
    """A Celery worker of the scale-out overlay (docker-compose.scale.yml, CeleryExecutor only).

    Healthy when it answers a Celery ping addressed to this host's worker (`celery@<hostname>`),
    the check Airflow's own compose file uses; it also serves its task logs on
    AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT (8793) for the API server.
    """
    import socket

    celery = Path(sys.executable).with_name("celery")
    check = [str(celery) if celery.exists() else "celery",
             "--app", "airflow.providers.celery.executors.celery_executor.app",
             "inspect", "ping", "--destination", f"celery@{socket.gethostname()}", "--timeout", "10"]
    return Service("airflow-celery-worker", _airflow("celery", "worker"), health_argv=check)


def airflow_db_migrate() -> Service:
    return Service("airflow-db-migrate", _airflow("db", "migrate"), long_running=False)


def db_setup() -> Service:
    return Service("db-setup", _python("-m", "db.manage", "setup"), long_running=False)


def seed_raw_data() -> Service:
    # only on an empty raw-data: a restart never piles more files on top of unprocessed ones
    return Service("seed-raw-data", _python("-m", "scripts.seed_raw_data", "--if-empty"), long_running=False)


def mlflow() -> Service:
    """The tracking server and registry UI; artifacts proxied by the server into a local folder."""
    from db.mlflow_store import mlflow_backend_url
    from db.session import configured_database_url

    s = MlflowServerSettings()
    argv = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--backend-store-uri", mlflow_backend_url(configured_database_url(), s.mlflow_database),
        "--artifacts-destination", str(s.mlflow_artifacts_dir),
        "--host", s.mlflow_host, "--port", str(s.mlflow_port), "--workers", "1",
    ]
    if s.mlflow_allowed_hosts:
        argv += ["--allowed-hosts", s.mlflow_allowed_hosts]
    url = f"http://{_browser_host(s.mlflow_host)}:{s.mlflow_port}"
    return Service("mlflow", argv, url=url, login="none", health_url=f"{url}/health")


# compose's api-token step runs as root to give each copy its reader's uid: the app and Airflow
# images run as 50000 (group 0), the Prometheus image as nobody (65534)
APP_OWNER, PROMETHEUS_OWNER = "50000:0", "65534:65534"
PROMETHEUS_TOKEN_COPY = "/data/prometheus-secrets/api-token"  # compose's prometheus-token volume


def api_token() -> Service:
    # compose's one-shot: API_TOKEN_FILE created on first start (make run does it in the launcher),
    # and Prometheus's read-only copy written on every start
    return Service("api-token", _python(
        "-m", "launcher.api_token", "--owner", APP_OWNER,
        "--copy", PROMETHEUS_TOKEN_COPY, "--copy-owner", PROMETHEUS_OWNER,
    ), long_running=False)


def seed_labels() -> Service:
    # make run's stand-in for outcomes coming back: label files for customers already predicted
    return Service("seed-labels", _python("-m", "scripts.seed_labels", "--every"))


def concept_drift_scenario() -> Service:
    return Service("concept-drift-scenario", _python("-m", "scripts.concept_drift_scenario"),
                   long_running=False)


def register_model() -> Service:
    # the first champion: the artifacts trained at setup, registered once (later runs keep theirs)
    return Service("register-model", _python("-m", "model.registry", "register", "--if-no-champion"),
                   long_running=False)


def grafana() -> Service:
    s = GrafanaSettings()
    argv = ["grafana", "server"]
    home = s.grafana_home_path or _guess_grafana_home()
    if home is not None:
        argv += ["--homepath", str(home)]
    argv += [
        f"cfg:default.server.http_addr={s.grafana_host}",
        f"cfg:default.server.http_port={s.grafana_port}",
        f"cfg:default.paths.data={s.grafana_data_dir}",
        f"cfg:default.paths.logs={s.grafana_data_dir / 'log'}",
        f"cfg:default.paths.provisioning={s.grafana_provisioning_dir}",
    ]
    url = f"http://{_browser_host(s.grafana_host)}:{s.grafana_port}"
    return Service(
        "grafana", argv, url=url, health_url=f"{url}/api/health",
        login=f"{s.grafana_admin_user} / $GRAFANA_ADMIN_PASSWORD (local default: admin)",
    )


def prometheus() -> Service:
    """Prometheus on loopback, scraping the API; its configuration is rendered at start."""
    s = PrometheusSettings()
    argv = [
        "prometheus", f"--config.file={s.prometheus_data_dir / 'prometheus.yml'}",
        f"--storage.tsdb.path={s.prometheus_data_dir / 'data'}",
        f"--storage.tsdb.retention.time={s.prometheus_retention}",
        f"--web.listen-address={s.prometheus_host}:{s.prometheus_port}",
    ]
    return Service("prometheus", argv, url=s.url, login="none", health_url=f"{s.url}/-/ready")


def render_prometheus_config(
    data_dir: Path, *, api_target: str, api_token: str | None, prometheus_target: str,
    scrape_interval_seconds: int,
) -> Path:
    """Write prometheus/prometheus.yml, filled in, into `data_dir`; return the written file.

    `api_target` is host:port of the API; `api_token` goes to `data_dir/api-token` (0600), which
    the configuration names as the scrape's bearer credentials file (empty when the API is open).
    """
    from string import Template

    data_dir.mkdir(parents=True, exist_ok=True)
    token_file = data_dir / "api-token"
    descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(api_token or "")
    config = Template(PROMETHEUS_TEMPLATE.read_text()).substitute(
        scrape_interval=f"{scrape_interval_seconds}s",
        scrape_timeout=f"{max(1, min(10, scrape_interval_seconds))}s",
        api_token_file=str(token_file), api_target=api_target, prometheus_target=prometheus_target,
    )
    path = data_dir / "prometheus.yml"
    path.write_text(config)
    return path


def prepare_prometheus_process() -> None:
    """Render the configuration from this process's settings (the API's address and token)."""
    s, api_settings = PrometheusSettings(), ApiServerSettings()
    render_prometheus_config(
        s.prometheus_data_dir,
        api_target=f"{_browser_host(api_settings.api_host)}:{api_settings.api_port}",
        api_token=api_settings.token_value(),
        prometheus_target=f"{_browser_host(s.prometheus_host)}:{s.prometheus_port}",
        scrape_interval_seconds=s.prometheus_scrape_interval_seconds,
    )


def _guess_grafana_home() -> Path | None:
    """Debian packages keep it in /usr/share/grafana; tarballs beside bin/."""
    binary = shutil.which("grafana")
    if binary is None:
        return None
    for candidate in (Path(binary).resolve().parent.parent, Path("/usr/share/grafana")):
        if (candidate / "conf" / "defaults.ini").exists():
            return candidate
    return None


SERVICES: dict[str, Callable[[], Service]] = {
    "api-token": api_token,
    "db-setup": db_setup,
    "seed-raw-data": seed_raw_data,
    "api": api,
    "webapp": webapp,
    "airflow-db-migrate": airflow_db_migrate,
    "airflow-api-server": airflow_api_server,
    "airflow-scheduler": airflow_scheduler,
    "airflow-dag-processor": airflow_dag_processor,
    "airflow-triggerer": airflow_triggerer,
    "airflow-celery-worker": airflow_celery_worker,
    "grafana": grafana,
    "prometheus": prometheus,
    "mlflow": mlflow,
    "register-model": register_model,
    "seed-labels": seed_labels,
    "concept-drift-scenario": concept_drift_scenario,
}


def command_for(name: str) -> Service:
    if name not in SERVICES:
        raise SystemExit(f"unknown service {name!r}; known: {', '.join(SERVICES)}")
    return SERVICES[name]()


def prepare_airflow_process(environ: MutableMapping[str, str]) -> None:
    """What every Airflow process needs before it starts, in compose and `make run` alike.

    All components must sign and check tokens with one JWT secret: unless given, it is the one
    kept in AIRFLOW_HOME (a volume shared by the Airflow containers), created on first use.
    """
    from launcher.airflow_env import jwt_secret

    home = Path(environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    if "AIRFLOW__API_AUTH__JWT_SECRET" not in environ:
        secret = jwt_secret(home, environ.get("AIRFLOW_JWT_SECRET") or None)
        environ["AIRFLOW__API_AUTH__JWT_SECRET"] = secret
        environ.setdefault("AIRFLOW__API__SECRET_KEY", secret)


def ensure_airflow_database(environ: Mapping[str, str]) -> None:
    """Create Airflow's metadata database on the application's server when it is missing."""
    from sqlalchemy.engine import make_url

    from db.admin import create_database

    url = make_url(environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    if url.drivername.startswith("postgresql") and url.database:
        create_database(server_url=url.render_as_string(hide_password=False), name=url.database)


def prepare_grafana_process(environ: MutableMapping[str, str]) -> None:
    """The datasource provisioning reads GRAFANA_DB_*: derive them from DATABASE_URL (make run)."""
    from sqlalchemy.engine import make_url

    s = GrafanaSettings()
    # compose mounts the dashboards at /var/lib/grafana/dashboards; locally they stay in the repo
    environ.setdefault("GRAFANA_DASHBOARDS_DIR", str(REPO_ROOT / "grafana" / "dashboards"))
    # the contact point needs a URL; unset, alerts go to a port where nothing listens
    environ.setdefault("GRAFANA_TEAMS_WEBHOOK_URL", "http://127.0.0.1:9/teams-webhook-unset")
    environ.setdefault("GF_SECURITY_ADMIN_USER", s.grafana_admin_user)
    environ.setdefault("GF_SECURITY_ADMIN_PASSWORD", s.grafana_admin_password.get_secret_value())
    # the second datasource (uid churn-prometheus): make run's Prometheus unless PROMETHEUS_URL says
    environ.setdefault("PROMETHEUS_URL", s.prometheus_url or PrometheusSettings().url)
    if "DATABASE_URL" in environ:
        url = make_url(environ["DATABASE_URL"])
        environ.setdefault("GRAFANA_DB_HOST", url.host or "127.0.0.1")
        environ.setdefault("GRAFANA_DB_PORT", str(url.port or 5432))
        environ.setdefault("GRAFANA_DB_NAME", url.database or "")
        environ.setdefault("GRAFANA_DB_SSLMODE", "disable")


def is_healthy(name: str) -> bool:
    """The service answers its health URL (below 500) or its health command succeeds."""
    import subprocess
    import urllib.error
    import urllib.request

    service = command_for(name)
    if service.health_url:
        try:
            with urllib.request.urlopen(service.health_url, timeout=3) as response:
                return response.status < 500
        except urllib.error.HTTPError as error:
            return error.code < 500
        except (urllib.error.URLError, OSError):
            return False
    if service.health_argv:
        return subprocess.run(service.health_argv, capture_output=True, check=False).returncode == 0
    return True


def exec_service(name: str) -> None:
    """Replace this process by the service, so signals reach the server itself."""
    service = command_for(name)
    if name.startswith("airflow-"):
        prepare_airflow_process(os.environ)
    if name == "airflow-db-migrate":
        ensure_airflow_database(os.environ)
    if name == "grafana":
        prepare_grafana_process(os.environ)
    if name == "prometheus":
        prepare_prometheus_process()
    os.chdir(REPO_ROOT)  # `api.main:app`, `dags/` and relative settings resolve from the repo root
    os.execvp(service.argv[0], service.argv)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run one service of the stack in the foreground.")
    parser.add_argument("service", nargs="?", choices=list(SERVICES))
    parser.add_argument("--list", action="store_true", help="print every service and its command")
    parser.add_argument("--health", action="store_true", help="check the running service instead")
    args = parser.parse_args(argv)
    if args.health and args.service:
        sys.exit(0 if is_healthy(args.service) else 1)
    if args.list or args.service is None:
        for name in SERVICES:
            print(f"{name:24} {' '.join(command_for(name).argv)}")
        return
    exec_service(args.service)


if __name__ == "__main__":
    main()
