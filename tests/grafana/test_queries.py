"""Every panel and alert query, macros expanded as Grafana does, on the demo history, as Grafana's role.

The dashboards are evaluated over their default time range ending where the demo ends; the
alerts at a moment inside each incident of the demo (they must fire) and at a healthy moment
(they must not).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from model.contract import SEGMENTS
from scripts.seed_demo_history import DemoTimeline
from tests.grafana.conftest import DemoDatabase, alert_rules, load_dashboards
from tests.grafana.macros import dashboard_variables, expand_macros, panel_interval, parse_interval

NUMBER = (int, float, Decimal)
PANELS = [
    pytest.param(board, panel, id=f"{board['uid']}:{panel['title']}")
    for board in load_dashboards().values()
    for panel in board["panels"]
]


def default_range(board: dict[str, Any], end: datetime) -> tuple[datetime, datetime]:
    return end - parse_interval(board["time"]["from"].removeprefix("now-")), end


def run(conn: psycopg.Connection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = conn.execute(sql)
    return [c.name for c in cursor.description], cursor.fetchall()


def check_time_series(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    assert columns[0] == "time"
    times = [row[0] for row in rows]
    assert times == sorted(times), "Grafana needs time series sorted by time"
    if "metric" in columns:  # long format: one series per metric value
        assert len(columns) == 3 and columns[1] == "metric"
        assert all(isinstance(row[1], str) and isinstance(row[2], NUMBER) for row in rows)
    else:
        assert len(columns) >= 2
        assert all(isinstance(v, NUMBER) for row in rows for v in row[1:] if v is not None)


def check_panel_result(panel: dict[str, Any], columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    assert rows, f"{panel['title']} returned nothing on the demo history"
    kind = panel["type"]
    if kind == "timeseries":
        check_time_series(columns, rows)
    elif kind == "stat":
        assert len(rows) == 1 and all(isinstance(v, NUMBER) for v in rows[0]), (columns, rows)
    elif kind == "table":
        named = {o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"]
                 if o["matcher"]["id"] == "byName"}
        assert named <= set(columns), f"overrides name missing columns: {named - set(columns)}"
    elif kind == "barchart":
        x = columns.index(panel["options"]["xField"])
        assert all(isinstance(row[x], str) for row in rows)
        assert all(isinstance(v, NUMBER) for row in rows for i, v in enumerate(row) if i != x)
    elif kind == "piechart":
        assert isinstance(rows[0][0], str) and all(isinstance(v, NUMBER) for v in rows[0][1:])
    else:
        pytest.fail(f"no expectation for panel type {kind}")


@pytest.mark.parametrize(("board", "panel"), PANELS)
def test_panel_query_returns_what_the_panel_shows(
    board: dict[str, Any], panel: dict[str, Any], demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    start, end = default_range(board, demo_db.timeline.end)
    interval = panel_interval(start, end, panel.get("interval"))
    for target in panel["targets"]:
        sql = expand_macros(target["rawSql"], start=start, end=end, interval=interval,
                            variables=dashboard_variables(board))
        columns, rows = run(reader, sql)
        check_panel_result(panel, columns, rows)


SEGMENTED = [pytest.param(board, panel, id=f"{board['uid']}:{panel['title']}")
             for board in load_dashboards().values() for panel in board["panels"]
             if any("${segment" in t["rawSql"] for t in panel["targets"])]


def test_segment_variable_lists_all_and_the_contract_segments(
    reader: psycopg.Connection, demo_db: DemoDatabase,
) -> None:
    (variable,) = load_dashboards()["drift_predictions.json"]["templating"]["list"]
    assert variable["current"]["value"] == "all"
    listed = [row[0] for row in run(reader, variable["query"])[1]]
    assert listed == ["all", *[s.name for s in SEGMENTS]]


@pytest.mark.parametrize("segment", ["contract = Month-to-month", "tenure 48+ months", "source = webapp"])
@pytest.mark.parametrize(("board", "panel"), SEGMENTED)
def test_segmented_panels_filter_by_segment(
    board: dict[str, Any], panel: dict[str, Any], segment: str, demo_db: DemoDatabase,
    reader: psycopg.Connection,
) -> None:
    """Each panel answers for a segment; webapp traffic is too thin for a verdict, and says so."""
    start, end = default_range(board, demo_db.timeline.end)
    interval = panel_interval(start, end, panel.get("interval"))
    for target in panel["targets"]:
        sql = expand_macros(target["rawSql"], start=start, end=end, interval=interval,
                            variables={"segment": segment})
        columns, rows = run(reader, sql)
        if segment == "source = webapp" and panel["type"] in ("stat", "timeseries") and (
            "drift_test" in sql or "estimated_performance" in sql or "min_rows" in sql
        ):
            assert all(v is None for row in rows for v in row[1:] if not isinstance(v, str)), rows
            continue
        check_panel_result(panel, columns, rows)


def test_latest_ingestions_link_to_their_reports(demo_db: DemoDatabase, reader: psycopg.Connection) -> None:
    board = load_dashboards()["data_quality.json"]
    (panel,) = [p for p in board["panels"] if p["title"] == "Latest ingestions"]
    start, end = default_range(board, demo_db.timeline.end)
    sql = expand_macros(panel["targets"][0]["rawSql"], start=start, end=end, interval=timedelta(minutes=5))
    columns, rows = run(reader, sql)
    assert len(rows) == 50
    reports = [row[columns.index("report")] for row in rows]
    assert all(url.startswith("http") and url.endswith(".html") for url in reports)
    links = {o["matcher"]["options"]: o["properties"][0]["value"][0]["url"]
             for o in panel["fieldConfig"]["overrides"] if o["properties"][0]["id"] == "links"}
    assert links == {"file": "${__data.fields.report}", "report": "${__value.raw}"}


def test_psi_panel_shows_the_drift_episode_red(demo_db: DemoDatabase, reader: psycopg.Connection) -> None:
    """Over the drift hour, the drifted features pass 0.25 and the untouched ones stay green."""
    drift_start, drift_end = demo_db.timeline.drift
    sql = expand_macros(
        "SELECT feature, psi FROM drift_psi($__timeFrom(), $__timeTo())",
        start=drift_start, end=drift_end, interval=timedelta(minutes=1),
    )
    psi = dict(run(reader, sql)[1])
    red = {feature for feature, value in psi.items() if value > 0.25}
    assert {"contract", "tenure", "payment_method", "internet_service"} <= red
    assert psi["female"] < 0.1 and psi["senior_citizen"] < 0.1


# (rule uid) -> which demo moment must fire it; every rule is silent at the healthy moment
INCIDENT_MOMENTS = {
    "churn-all-rows-invalid": lambda t: t.bad_data[1],
    "churn-no-ingestion": lambda t: t.outage[0] + timedelta(minutes=8),
    "churn-single-label": lambda t: t.drift[1] - timedelta(minutes=5),
    "churn-rate-far-from-training": lambda t: t.drift[1] - timedelta(minutes=5),
    "churn-feature-psi": lambda t: t.drift[1],
    "churn-feature-empty": lambda t: t.empty_values[0] + timedelta(minutes=10),
    "churn-realized-f1-below-training": lambda t: t.drift[1] - timedelta(minutes=5),
}


def healthy_moment(timeline: DemoTimeline) -> datetime:
    return timeline.bad_data[0] - timedelta(minutes=5)


def threshold_holds(evaluator: dict[str, Any], value: float) -> bool:
    params = evaluator["params"]
    return {
        "gt": lambda: value > params[0], "lt": lambda: value < params[0],
        "within_range": lambda: params[0] < value < params[1],
        "outside_range": lambda: value < params[0] or value > params[1],
    }[evaluator["type"]]()


def evaluate_rule(rule: dict[str, Any], conn: psycopg.Connection, at: datetime) -> dict[str, bool]:
    """Run the rule as Grafana would at `at`: firing state per instance (its text labels)."""
    by_ref = {q["refId"]: q for q in rule["data"]}
    query, condition = by_ref["A"], by_ref[rule["condition"]]["model"]
    assert by_ref[condition["expression"]]["model"]["reducer"] == "last"
    window = query["relativeTimeRange"]
    sql = expand_macros(
        query["model"]["rawSql"], start=at - timedelta(seconds=window["from"]),
        end=at - timedelta(seconds=window["to"]), interval=timedelta(seconds=60),
    )
    _, rows = run(conn, sql)
    (evaluator,) = [c["evaluator"] for c in condition["conditions"]]
    states = {}
    for row in rows:
        labels = ",".join(str(v) for v in row if isinstance(v, str))
        (value,) = [v for v in row if isinstance(v, NUMBER)]  # one numeric column per instance
        states[labels] = value is not None and threshold_holds(evaluator, float(value))
    return states


def test_every_alert_rule_has_an_incident_in_the_demo() -> None:
    assert {rule["uid"] for rule in alert_rules()} == set(INCIDENT_MOMENTS)


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["uid"])
def test_alert_fires_on_its_incident_and_not_on_healthy_data(
    rule: dict[str, Any], demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    incident = INCIDENT_MOMENTS[rule["uid"]](demo_db.timeline)
    assert any(evaluate_rule(rule, reader, incident).values()), f"{rule['title']} silent at {incident}"
    healthy = healthy_moment(demo_db.timeline)
    states = evaluate_rule(rule, reader, healthy)
    assert states and not any(states.values()), f"{rule['title']} fires on healthy data: {states}"


def test_drift_alert_lists_the_drifted_features_most_influential_first(
    demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    (rule,) = [r for r in alert_rules() if r["uid"] == "churn-feature-psi"]
    ((listed, fires),) = evaluate_rule(rule, reader, demo_db.timeline.drift[1]).items()
    assert fires
    entries = listed.split("; ")
    names = [entry.split(" ")[0] for entry in entries]
    assert {"contract", "tenure", "monthly_charges"} <= set(names) and "female" not in names
    shifts = [abs(float(entry.split("logit shift ")[1].split(",")[0])) for entry in entries]
    assert shifts == sorted(shifts, reverse=True)
    assert names[0] == "tenure" and "x critical" in entries[0]


def test_empty_values_alert_names_the_emptied_feature(
    demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    (rule,) = [r for r in alert_rules() if r["uid"] == "churn-feature-empty"]
    states = evaluate_rule(rule, reader, demo_db.timeline.empty_values[0] + timedelta(minutes=10))
    assert {feature for feature, fires in states.items() if fires} == {"total_charges"}
