"""The realized-F1 panel on the demo history, as Grafana's read-only role: the drift episode's
windows fall significantly below the training F1, the healthy ones do not.

A drift window is one the drift episode fills at least half of. The episode lasts an hour and
the windows are whole clock hours, so it always fills one window at least half and may touch its
neighbour by a minute: a window of 59 healthy minutes and one drifted is not a drift window (a
run at 22:16 UTC once found that neighbour healthy and failed; tests/test_clock.py).
"""

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
    window = timedelta(hours=1)
    drifted = [t for t in realized
               if min(t + window, drift_end) - max(t, drift_start) >= window / 2]  # half drifted at least
    healthy = [t for t in realized if t + timedelta(hours=1) <= timeline.bad_data[0]]
    assert drifted and healthy
    assert all(high[t] < training[t] for t in drifted), {t: (realized[t], high[t]) for t in drifted}
    assert all(high[t] >= training[t] for t in healthy)
    assert min(realized[t] for t in drifted) < min(realized[t] for t in healthy) - 0.1
