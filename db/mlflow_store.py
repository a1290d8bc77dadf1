"""MLflow's backend store: its own database on the project's PostgreSQL server.

MLflow creates and migrates its tables itself when its server starts; this module only makes
sure the database exists (`python -m db.manage setup` calls it, through db/admin.py, the one
place that creates databases) and builds its URL.
"""

from __future__ import annotations

from db.admin import create_database, database_url_on


def mlflow_backend_url(application_url: str, database: str) -> str:
    """The SQLAlchemy URL of `database` on the application's server (same user, host, driver)."""
    return database_url_on(application_url, database)


def ensure_mlflow_database(application_url: str, database: str) -> str:
    """Create `database` on the application's server when missing; returns its URL. Idempotent.

    Raises psycopg.Error when the server is unreachable or the role may not create databases.
    """
    return create_database(server_url=application_url, name=database)
