"""A database filled by the demo-history command, and the provisioning files as Python objects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.settings import REPO_ROOT
from db.roles import ensure_readonly_role
from db.session import get_engine, session_scope
from scripts.seed_demo_history import DemoTimeline, seed_demo_history
from tests.clock import suite_now
from tests.conftest import RUNTIME_TABLES

GRAFANA_DIR = REPO_ROOT / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
PROVISIONING_DIR = GRAFANA_DIR / "provisioning"
DATASOURCE_UID = "churn-postgres"
DEMO_HOURS = 6
READER = ("grafana_test_reader", "reader-pw")


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


PROMETHEUS_DASHBOARDS = ("service.json",)  # tests/grafana/test_prometheus_alerts.py checks these


def load_dashboards() -> dict[str, dict[str, Any]]:
    """The dashboards on PostgreSQL (SQL panels); the Prometheus ones are PROMETHEUS_DASHBOARDS."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))
            if path.name not in PROMETHEUS_DASHBOARDS}


def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(PROVISIONING_DIR / "alerting" / "rules.yaml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


@dataclass(frozen=True)
class DemoDatabase:
    timeline: DemoTimeline
    reader_conninfo: str  # the read-only role Grafana connects as


# parents before children (foreign keys), for restoring a copy of the demo history
RESTORE_ORDER = (
    "prediction_batches", "predicted_files", "ingested_files", "label_files", "predictions",
    "ingestion_errors", "labels", "shadow_predictions", "promotion_decisions", "realized_performance",
    "retrain_attempts",
)
_demo_copies: dict[datetime, dict[str, bytes]] = {}  # the runtime tables as seeded, per instant


@pytest.fixture(scope="module")
def demo_db(database_url: str) -> Iterator[DemoDatabase]:
    """Runtime tables emptied, then six hours of demo history ending at the suite's instant
    (tests/clock.py: fixed, not the wall clock); emptied again afterwards.

    The history is seeded once per test session and instant; the next module gets a copy of the
    tables as seeded (COPY), which is exactly the same data in a second instead of half a minute.
    """
    with get_engine().begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(RUNTIME_TABLES)} RESTART IDENTITY CASCADE"))
        ensure_readonly_role(conn, user=READER[0], password=READER[1])
    end = suite_now()
    libpq = make_url(database_url).set(drivername="postgresql")
    if end in _demo_copies:
        _restore_tables(libpq.render_as_string(hide_password=False), _demo_copies[end])
    else:
        with session_scope() as session:
            seed_demo_history(session=session, hours=DEMO_HOURS, end=end)
        _demo_copies[end] = _copy_tables(libpq.render_as_string(hide_password=False))
    reader = libpq.set(username=READER[0], password=READER[1])
    yield DemoDatabase(
        timeline=DemoTimeline.ending_at(end, DEMO_HOURS),
        reader_conninfo=reader.render_as_string(hide_password=False),
    )
    with get_engine().begin() as conn:  # the next module starts from empty tables, as after clean_db
        conn.execute(text(f"TRUNCATE {', '.join(RUNTIME_TABLES)} RESTART IDENTITY CASCADE"))


def _copy_tables(conninfo: str) -> dict[str, bytes]:
    """Every runtime table's rows in PostgreSQL's binary COPY format."""
    assert sorted(RESTORE_ORDER) == sorted(RUNTIME_TABLES), "a runtime table is missing from RESTORE_ORDER"
    copies = {}
    with psycopg.connect(conninfo) as conn:
        for table in RESTORE_ORDER:
            with conn.cursor().copy(f"COPY (SELECT * FROM {table}) TO STDOUT (FORMAT binary)") as copy:
                copies[table] = b"".join(bytes(block) for block in copy)
    return copies


def _restore_tables(conninfo: str, copies: dict[str, bytes]) -> None:
    """Load the copied rows into the emptied tables; each id sequence continues after its rows."""
    with psycopg.connect(conninfo) as conn:
        for table in RESTORE_ORDER:
            with conn.cursor().copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
                copy.write(copies[table])
        for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ANY(%s) "
            "AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL",
            (list(RESTORE_ORDER),),
        ).fetchall():
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                         f"coalesce(max({column}), 0) + 1, false) FROM {table}")


@pytest.fixture
def reader(demo_db: DemoDatabase) -> Iterator[psycopg.Connection]:
    with psycopg.connect(demo_db.reader_conninfo, autocommit=True) as conn:
        yield conn
