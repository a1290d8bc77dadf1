"""Airflow's whole configuration as AIRFLOW__* environment variables, with no airflow.cfg.

One function builds it, so that the local launcher (`make run`) and the tests configure Airflow
the same way. `airflow/` stays a folder of image files, never a Python package: it would shadow
the `airflow` library, which is why this module lives in scripts/.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from core.settings import REPO_ROOT, AirflowSettings

# The simple auth manager ships with Airflow 3; with all-admins on, the local UI needs no login.
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def jwt_secret(home: Path, configured: str | None = None) -> str:
    """The one JWT secret all Airflow components share: the configured one, or one kept in `home`."""
    if configured:
        return configured
    secret_file = home / "jwt_secret"
    if not secret_file.exists():
        home.mkdir(parents=True, exist_ok=True)
        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    return secret_file.read_text().strip()


def airflow_environment(
    home: Path,
    dags_folder: Path,
    sql_alchemy_conn: str,
    *,
    api_server_url: str | None = None,
    jwt_secret_value: str | None = None,
) -> dict[str, str]:
    """The environment every Airflow process of this stack runs with (scheduler, API server, tests).

    The repo root is put on PYTHONPATH so that DAG files import `jobs....` the same way
    in Airflow, in the tests and on the command line.
    """
    secret = jwt_secret(home, jwt_secret_value)
    api_server_url = api_server_url or AirflowSettings().api_server_url
    python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    environment = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # scheduled DAGs run as soon as `make run` has started Airflow, nobody has to unpause them
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_server_url.rstrip('/')}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn,
        "AIRFLOW__API_AUTH__JWT_SECRET": secret,
        "AIRFLOW__API__SECRET_KEY": secret,
        # new files in good_data/raw-data are picked up by the DAGs, the DAG files themselves change rarely
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "PYTHONPATH": python_path,
    }
    if sql_alchemy_conn.startswith("postgresql"):
        # Airflow derives its async URL as postgresql+asyncpg, a driver we do not install;
        # psycopg 3 serves both the sync and the async engine from the same URL.
        environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = sql_alchemy_conn
    return environment
