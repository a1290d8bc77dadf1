"""The realized-F1 panel on the demo history, as Grafana's read-only role: the drift episode's
windows fall significantly below the training F1, the healthy ones do not."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from tests.grafana.conftest import DemoDatabase, load_dashboards
from tests.grafana.macros import expand_macros


def test_the_realized_f1_panel_shows_the_drift_windows_below_training(
    demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    board = load_dashboards()["drift_predictions.json"]
    (panel,) = [p for p in board["panels"] if p["title"].startswith("Realized F1 per window")]
    timeline = demo_db.timeline
    sql = expand_macros(panel["targets"][0]["rawSql"], start=timeline.start, end=timeline.end,
                        interval=timedelta(minutes=1))
    series: dict[str, dict[datetime, float]] = {}
    for time, metric, value in reader.execute(sql).fetchall():
        series.setdefault(metric.split(" ", 1)[1], {})[time] = float(value)  # "<version> <what>"
    realized, high, training = series["realized F1"], series["95 % high"], series["training F1"]
    drift_start, drift_end = timeline.drift
    drifted = [t for t in realized if t + timedelta(hours=1) > drift_start and t < drift_end]
    healthy = [t for t in realized if t + timedelta(hours=1) <= timeline.bad_data[0]]
    assert drifted and healthy
    assert all(high[t] < training[t] for t in drifted), {t: (realized[t], high[t]) for t in drifted}
    assert all(high[t] >= training[t] for t in healthy)
    assert min(realized[t] for t in drifted) < min(realized[t] for t in healthy) - 0.1
