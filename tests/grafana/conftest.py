"""A database filled by the demo-history command, and the provisioning files as Python objects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
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


@pytest.fixture(scope="module")
def demo_db(database_url: str) -> Iterator[DemoDatabase]:
    """Runtime tables emptied, then six hours of demo history ending now; emptied again afterwards."""
    with get_engine().begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(RUNTIME_TABLES)} RESTART IDENTITY CASCADE"))
        ensure_readonly_role(conn, user=READER[0], password=READER[1])
    end = datetime.now(UTC)
    with session_scope() as session:
        seed_demo_history(session=session, hours=DEMO_HOURS, end=end)
    reader = make_url(database_url).set(drivername="postgresql", username=READER[0], password=READER[1])
    yield DemoDatabase(
        timeline=DemoTimeline.ending_at(end, DEMO_HOURS),
        reader_conninfo=reader.render_as_string(hide_password=False),
    )
    with get_engine().begin() as conn:  # the next module starts from empty tables, as after clean_db
        conn.execute(text(f"TRUNCATE {', '.join(RUNTIME_TABLES)} RESTART IDENTITY CASCADE"))


@pytest.fixture
def reader(demo_db: DemoDatabase) -> Iterator[psycopg.Connection]:
    with psycopg.connect(demo_db.reader_conninfo, autocommit=True) as conn:
        yield conn
