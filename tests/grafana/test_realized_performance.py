"""The realized-F1 panel on the demo history, as Grafana's read-only role: the drift episode's
windows fall significantly below the training F1, the healthy ones do not; coverage is shown and
unsettled windows are drawn as a series of their own, which the alert rule never reads.

A drift window is one the drift episode fills at least half of. The episode lasts an hour and
the windows are whole clock hours, so it always fills one window at least half and may touch its
neighbour by a minute: a window of 59 healthy minutes and one drifted is not a drift window (a
run at 22:16 UTC once found that neighbour healthy and failed; tests/test_clock.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from db.session import get_engine
from tests.grafana.conftest import DemoDatabase, alert_rules, load_dashboards
from tests.grafana.macros import expand_macros


def _panel() -> dict[str, Any]:
    board = load_dashboards()["drift_predictions.json"]
    (panel,) = [p for p in board["panels"] if p["title"].startswith("Realized F1 per window")]
    return panel


def _series(rows: list[tuple[datetime, str, float]]) -> dict[str, dict[datetime, float]]:
    series: dict[str, dict[datetime, float]] = {}
    for time, metric, value in rows:
        series.setdefault(metric.split(" ", 1)[1], {})[time] = float(value)  # "<version> <what>"
    return series


def test_the_realized_f1_panel_shows_the_drift_windows_below_training(
    demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    timeline = demo_db.timeline
    sql = expand_macros(_panel()["targets"][0]["rawSql"], start=timeline.start, end=timeline.end,
                        interval=timedelta(minutes=1))
    series = _series(reader.execute(sql).fetchall())
    realized, high, training = series["realized F1"], series["95 % high"], series["training F1"]
    assert "realized F1 (unsettled)" not in series  # the demo's outcomes are in: every window settled
    assert set(series["coverage"]) == set(realized) and min(series["coverage"].values()) >= 0.95
    drift_start, drift_end = timeline.drift
    window = timedelta(hours=1)
    drifted = [t for t in realized
               if min(t + window, drift_end) - max(t, drift_start) >= window / 2]  # half drifted at least
    healthy = [t for t in realized if t + timedelta(hours=1) <= timeline.bad_data[0]]
    assert drifted and healthy
    assert all(high[t] < training[t] for t in drifted), {t: (realized[t], high[t]) for t in drifted}
    assert all(high[t] >= training[t] for t in healthy)
    assert min(realized[t] for t in drifted) < min(realized[t] for t in healthy) - 0.1


def test_unsettled_windows_are_marked_and_the_alert_never_reads_them(
    demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    """A churners-first window (coverage 0.4, unsettled) whose interval lies below the training F1:
    the panel draws it as '<version> realized F1 (unsettled)' with its coverage, the alert rule
    ignores it; the same window settled would fire. Written in a transaction rolled back after."""
    timeline = demo_db.timeline
    (rule,) = [r for r in alert_rules() if r["uid"] == "churn-realized-f1-below-training"]
    healthy = timeline.bad_data[0] - timedelta(minutes=5)
    start = healthy - timedelta(minutes=30)
    window = {"v": "v-unsettled", "start": start, "end": start + timedelta(hours=1)}
    insert = """
        INSERT INTO realized_performance (model_version, window_start, window_end, predictions, labelled,
            coverage, positives, f1, f1_low, f1_high, training_f1, settled)
        VALUES (%(v)s, %(start)s, %(end)s, 500, 200, 0.4, 150, 0.3, 0.25, 0.35, 0.61, %(settled)s)"""
    alert_sql = expand_macros(rule["data"][0]["model"]["rawSql"], start=healthy - timedelta(hours=2),
                              end=healthy, interval=timedelta(minutes=1))
    panel_sql = expand_macros(_panel()["targets"][0]["rawSql"], start=start, end=start + timedelta(hours=1),
                              interval=timedelta(minutes=1))
    connection = get_engine().raw_connection()  # a writer, in a transaction rolled back after
    try:
        for settled in (False, True):
            cursor = connection.cursor()
            cursor.execute(insert, {**window, "settled": settled})
            cursor.execute(panel_sql)
            panel = [tuple(r) for r in cursor.fetchall() if r[1].startswith("v-unsettled")]
            cursor.execute(alert_sql)
            alert = dict(tuple(r) for r in cursor.fetchall())
            connection.rollback()
            series = _series(panel)
            name = "realized F1" if settled else "realized F1 (unsettled)"
            assert series[name] == {start: 0.3} and series["coverage"] == {start: 0.4}
            assert alert.get("v-unsettled") == (1 if settled else None)
    finally:
        connection.rollback()
        connection.close()
