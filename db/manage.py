"""Database commands.

    python -m db.manage start-db         start the embedded server (when DATABASE_URL is unset)
    python -m db.manage stop-db          stop the embedded server
    python -m db.manage url              print the database URL
    python -m db.manage migrate          apply the Alembic migrations (upgrade head)
    python -m db.manage load-baseline    load model/artifacts/metadata.json (metrics, drift baseline)
    python -m db.manage readonly-role    create/update the Grafana read-only role
    python -m db.manage mlflow-database  create MLflow's backend database (MLFLOW_DATABASE) if missing
    python -m db.manage setup            migrate + readonly-role + load-baseline + mlflow-database
    python -m db.manage partitions       create the predictions partitions ahead and apply the
                                         retention (PREDICTIONS_RETENTION_DAYS): db/partitions.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from alembic import command
from alembic.config import Config

from core.settings import REPO_ROOT, DatabaseSettings, PredictionStorageSettings, ReadonlyRoleSettings
from db import embedded
from db.model_versions import record_model_version
from db.partitions import MaintenanceReport, maintain_partitions
from db.roles import ensure_readonly_role
from db.session import database_url, get_engine, session_scope

ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"
DEFAULT_METADATA = REPO_ROOT / "model" / "artifacts" / "metadata.json"


def alembic_config(url: str | None = None) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.attributes["url"] = url or database_url()
    config.attributes["configure_logging"] = False
    return config


def migrate(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def load_baseline(metadata_path: Path = DEFAULT_METADATA) -> str:
    with session_scope() as session:
        return record_model_version(session=session, metadata=json.loads(metadata_path.read_text()))


def maintain_prediction_partitions(settings: PredictionStorageSettings | None = None) -> MaintenanceReport:
    """Partitions ahead, default rows moved, retention applied: one transaction (db/partitions.py)."""
    settings = settings or PredictionStorageSettings()
    with session_scope() as session:
        return maintain_partitions(session=session, months_ahead=settings.predictions_partitions_ahead,
                                   retention_days=settings.predictions_retention_days)


def readonly_role() -> str:
    settings = ReadonlyRoleSettings()
    with get_engine().begin() as connection:
        ensure_readonly_role(
            connection, user=settings.grafana_db_user,
            password=settings.grafana_db_password.get_secret_value(),
        )
    return settings.grafana_db_user


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Database commands.")
    parser.add_argument(
        "action",
        choices=["start-db", "stop-db", "url", "migrate", "load-baseline", "readonly-role",
                 "mlflow-database", "setup", "partitions"],
    )
    parser.add_argument("--metadata", type=Path, default=DEFAULT_METADATA)
    args = parser.parse_args(argv)
    if args.action == "start-db":
        print(embedded.ensure_running())
    elif args.action == "stop-db":
        print("stopped" if embedded.stop() else "not running")
    elif args.action == "url":
        print(database_url(DatabaseSettings()))
    if args.action in ("migrate", "setup"):
        migrate()
        print("migrations applied")
    if args.action in ("partitions", "setup"):
        print(f"predictions partitions: {maintain_prediction_partitions().summary()}")
    if args.action in ("readonly-role", "setup"):
        print(f"read-only role {readonly_role()} ready")
    if args.action in ("load-baseline", "setup"):
        print(f"training baseline of {load_baseline(args.metadata)} loaded")
    if args.action in ("mlflow-database", "setup"):
        from core.settings import MlflowServerSettings
        from db.mlflow_store import ensure_mlflow_database

        name = MlflowServerSettings().mlflow_database
        ensure_mlflow_database(database_url(), name)
        print(f"MLflow database '{name}' ready")


if __name__ == "__main__":
    main()
