"""Migrations, the read-only role, settings and the training baseline, on a real PostgreSQL."""

from __future__ import annotations

import time

import psycopg
import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from core.settings import ReadonlyRoleSettings
from db.manage import alembic_config, downgrade, migrate
from db.models import BaselineBin, BaselineFeature, ModelVersion
from db.roles import ensure_readonly_role
from db.session import get_engine, session_scope
from model.contract import FEATURE_NAMES


def test_migrations_down_to_empty_and_up_again(database_url: str) -> None:
    engine = create_engine(database_url)
    downgrade(database_url, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    migrate(database_url)
    tables = set(inspect(engine).get_table_names())
    assert {"predictions", "ingested_files", "ingestion_errors", "predicted_files",
            "baseline_bins", "baseline_features", "model_versions"} <= tables
    columns = {c["name"] for c in inspect(engine).get_columns("predictions")}
    assert set(FEATURE_NAMES) <= columns
    engine.dispose()
    from db.manage import load_baseline

    load_baseline()  # the session fixture's baseline went with the downgrade


def test_models_and_migrations_agree(database_url: str) -> None:
    """Autogenerate finds nothing to do: the migration history matches db/models.py."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from db.models import Base
    from db.partitions import include_object

    with create_engine(database_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    assert alembic_config(database_url).get_main_option("script_location")


def test_readonly_role_reads_but_cannot_write(database_url: str) -> None:
    with get_engine().begin() as conn:
        ensure_readonly_role(conn, user="test_reader", password="s3cret'quote")
    url = make_url(database_url).set(
        drivername="postgresql", username="test_reader", password="s3cret'quote"
    )
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM model_versions").fetchone()[0] >= 1
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO predicted_files (file_name, checksum, rows) VALUES ('x','y',1)")
        conn.execute("SET default_transaction_read_only = off")  # a client may lift it...
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # ...the grants still refuse
            conn.execute("DELETE FROM model_versions")


def test_settings_reject_missing_required_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFANA_DB_PASSWORD", raising=False)
    with pytest.raises(ValidationError, match="grafana_db_password"):
        ReadonlyRoleSettings(_env_file=None)


def test_training_baseline_loaded(database_url: str) -> None:
    with session_scope() as session:
        version = session.scalars(select(ModelVersion.model_version)).one()
        features = session.scalars(
            select(BaselineFeature.feature).where(BaselineFeature.model_version == version)
        ).all()
        assert sorted(features) == sorted(FEATURE_NAMES)
        shares = session.execute(
            select(BaselineBin.feature, text("sum(proportion)")).group_by(BaselineBin.feature)
        ).all()
        assert all(total == pytest.approx(1.0) for _, total in shares)


def test_a_pooled_connection_the_server_closed_is_replaced_before_use(database_url: str) -> None:
    """No pre-ping round trip on checkout, yet a connection terminated by the server (a restart,
    an idle timeout) never reaches the caller: the checkout sees its closed socket and reconnects."""
    from db import session as db_session

    db_session.get_engine.cache_clear()
    engine = db_session.get_engine()
    try:
        with engine.connect() as connection:
            first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(make_url(database_url).set(drivername="postgresql")
                             .render_as_string(hide_password=False), autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone() == (True,)
        deadline = time.monotonic() + 10
        while admin_sees_backend(database_url, first) and time.monotonic() < deadline:
            time.sleep(0.05)
        with engine.connect() as connection:  # the same pooled connection would fail here
            second = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert second != first
        assert engine.pool.status().startswith("Pool size: ")
    finally:
        engine.dispose()
        db_session.get_engine.cache_clear()


def admin_sees_backend(database_url: str, pid: int) -> bool:
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as admin:
        found = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return found == (1,)
