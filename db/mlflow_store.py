"""MLflow's backend store: its own database on the project's PostgreSQL server.

MLflow creates and migrates its tables itself when its server starts; this module only makes
sure the database exists (`python -m db.manage setup` calls it) and builds its URL.
"""

from __future__ import annotations

import psycopg
from sqlalchemy.engine import make_url


def mlflow_backend_url(application_url: str, database: str) -> str:
    """The SQLAlchemy URL of `database` on the application's server (same user, host, driver)."""
    return make_url(application_url).set(database=database).render_as_string(hide_password=False)


def ensure_mlflow_database(application_url: str, database: str) -> str:
    """Create `database` on the application's server when missing; returns its URL. Idempotent."""
    url = make_url(application_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')
    return mlflow_backend_url(application_url, database)
