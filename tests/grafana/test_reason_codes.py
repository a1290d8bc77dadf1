"""The drift dashboard's top-reason panel: its shares agree with the stored rows and show the incident."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from db.session import get_engine
from tests.grafana.conftest import DemoDatabase, load_dashboards
from tests.grafana.macros import expand_macros, panel_interval

PANEL_TITLE = "Top reason of each prediction, share per window"


def reason_panel() -> dict[str, Any]:
    [panel] = [p for p in load_dashboards()["drift_predictions.json"]["panels"] if p["title"] == PANEL_TITLE]
    return panel


def panel_shares(
    reader: psycopg.Connection, start: datetime, end: datetime,
) -> tuple[timedelta, dict[float, dict[str, float]]]:
    """{bucket start (epoch s): {feature: share %}} as the panel computes it, read as Grafana's role."""
    panel = reason_panel()
    interval = panel_interval(start, end, panel.get("interval"))
    sql = expand_macros(panel["targets"][0]["rawSql"], start=start, end=end, interval=interval)
    shares: dict[float, dict[str, float]] = defaultdict(dict)
    for bucket, feature, share in reader.execute(sql).fetchall():
        shares[float(bucket)][feature] = float(share)
    return interval, shares


def test_shares_match_the_stored_top_reasons(demo_db: DemoDatabase, reader: psycopg.Connection) -> None:
    end = demo_db.timeline.end
    start = end - timedelta(hours=1)
    interval, shares = panel_shares(reader, start, end)
    with get_engine().connect() as conn:
        rows = conn.execute(text(
            "SELECT extract(epoch FROM created_at) AS epoch, reason_1_feature FROM predictions "
            "WHERE created_at BETWEEN :start AND :end"), {"start": start, "end": end}).all()
    assert rows and all(feature is not None for _, feature in rows)  # the demo scores with reasons
    width = interval.total_seconds()
    counts: dict[float, Counter[str]] = defaultdict(Counter)
    for epoch, feature in rows:
        counts[float(epoch) // width * width][feature] += 1
    assert set(shares) == set(counts)
    for bucket, per_feature in counts.items():
        total = sum(per_feature.values())
        expected = {feature: 100 * count / total for feature, count in per_feature.items()}
        assert shares[bucket] == pytest.approx(expected), bucket
        assert sum(shares[bucket].values()) == pytest.approx(100)


def test_the_drift_incident_changes_the_mix(demo_db: DemoDatabase, reader: psycopg.Connection) -> None:
    """Newcomers with days of tenure: tenure becomes the top reason of most predictions."""
    drift_start, drift_end = demo_db.timeline.drift
    before = (drift_start - (drift_end - drift_start), drift_start)

    def tenure_share(start: datetime, end: datetime) -> float:
        _, shares = panel_shares(reader, start, end)
        return sum(s.get("tenure", 0.0) for s in shares.values()) / len(shares)

    assert tenure_share(drift_start, drift_end) > tenure_share(*before) + 20
