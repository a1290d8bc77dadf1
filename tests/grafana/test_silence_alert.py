"""The silence rule (service_rules.yaml, churn-good-rows-not-predicted) on the demo history plus a
seeded episode, as Grafana's read-only role runs it: files with valid rows keep arriving after the
demo ends, the prediction DAG has stopped (no scheduled prediction follows), then it comes back.

The demo itself is healthy for this rule throughout, its incidents included: during its outage no
file arrives (nothing waits), and its bad-data files hold no valid row (nothing to predict).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy import text

from db.models import Prediction
from db.session import get_engine, session_scope
from db.statistics import record_ingestion_statistics
from tests.grafana.conftest import PROVISIONING_DIR, DemoDatabase
from tests.grafana.macros import expand_macros

RULE_UID = "churn-good-rows-not-predicted"


def silence_rule() -> dict[str, Any]:
    groups = yaml.safe_load((PROVISIONING_DIR / "alerting" / "service_rules.yaml").read_text())["groups"]
    (rule,) = [rule for group in groups for rule in group["rules"] if rule["uid"] == RULE_UID]
    return rule


def waiting_seconds(conn: psycopg.Connection, at: datetime) -> float:
    """The rule's query A at `at` (macros expanded as Grafana does), reduced to its last value."""
    query = next(q for q in silence_rule()["data"] if q["refId"] == "A")
    window = query["relativeTimeRange"]
    sql = expand_macros(query["model"]["rawSql"], start=at - timedelta(seconds=window["from"]),
                        end=at - timedelta(seconds=window["to"]), interval=timedelta(seconds=60))
    rows = conn.execute(sql).fetchall()
    assert len(rows) == 1, rows  # an aggregate: always one row, so No Data means a broken query
    return float(rows[0][0])


def fires(conn: psycopg.Connection, at: datetime) -> bool:
    condition = next(q for q in silence_rule()["data"] if q["refId"] == silence_rule()["condition"])
    (evaluator,) = [c["evaluator"] for c in condition["model"]["conditions"]]
    assert evaluator["type"] == "gt"
    return waiting_seconds(conn, at) > evaluator["params"][0]


def ingest_good_file(name: str, at: datetime) -> None:
    with session_scope() as session:
        record_ingestion_statistics(
            session=session, file_name=name, dag_run_id="silence-episode", started_at=at, rows=50,
            valid_rows=50, invalid_rows=0, criticality="none", outcome="good", report_url=None,
            alert_sent=None, error_counts={}, ingested_at=at,
        )


def store_scheduled_prediction(at: datetime) -> None:
    """A copy of a demo prediction, scheduled, at `at`: the prediction DAG came back."""
    columns = [c.name for c in Prediction.__table__.columns if c.name not in ("id", "created_at", "source",
                                                                                "batch_key")]
    listed = ", ".join(columns)
    with get_engine().begin() as conn:
        conn.execute(text(
            f"INSERT INTO predictions (created_at, source, {listed}) "
            f"SELECT :at, 'scheduled', {listed} FROM predictions ORDER BY id LIMIT 1"), {"at": at})


@pytest.fixture(scope="module")
def episode(demo_db: DemoDatabase) -> dict[str, datetime]:
    """After the demo: a good file every minute for 20 minutes, no prediction, then one at +21 min."""
    end = demo_db.timeline.end
    for minute in range(1, 21):
        ingest_good_file(f"after-demo-{minute:02d}.csv", end + timedelta(minutes=minute, seconds=5))
    store_scheduled_prediction(end + timedelta(minutes=21))
    return {"first_file": end + timedelta(minutes=1, seconds=5), "recovered": end + timedelta(minutes=21)}


def test_the_rule_is_on_postgres_with_its_states_chosen() -> None:
    rule = silence_rule()
    (query,) = [q for q in rule["data"] if q["refId"] == "A"]
    assert query["datasourceUid"] == "churn-postgres" and "now()" not in query["model"]["rawSql"]
    assert (rule["noDataState"], rule["execErrState"]) == ("Alerting", "Error")


def test_fires_when_good_rows_wait_ten_minutes_for_a_scheduled_prediction(
    demo_db: DemoDatabase, episode: dict[str, datetime], reader: psycopg.Connection,
) -> None:
    first = episode["first_file"]
    assert not fires(reader, first + timedelta(minutes=8))  # four DAG runs late: not yet
    assert waiting_seconds(reader, first + timedelta(minutes=8)) == pytest.approx(480)
    assert fires(reader, first + timedelta(minutes=11))
    assert fires(reader, first + timedelta(minutes=19))
    # the DAG came back and predicted: nothing waits any more
    assert not fires(reader, episode["recovered"] + timedelta(minutes=1))
    assert waiting_seconds(reader, episode["recovered"] + timedelta(minutes=1)) == 0


@pytest.mark.parametrize("minutes_before_end", [5, 17, 45, 95, 122, 190, 300, 350])
def test_silent_on_the_demo_history_incidents_included(
    demo_db: DemoDatabase, episode: dict[str, datetime], reader: psycopg.Connection, minutes_before_end: int,
) -> None:
    """Every two minutes the demo's prediction DAG scores the files since: the longest wait is about
    two minutes, in healthy hours as in the outage (95), bad data (122) and empty values (190)."""
    at = demo_db.timeline.end - timedelta(minutes=minutes_before_end)
    assert waiting_seconds(reader, at) <= 180
    assert not fires(reader, at)
