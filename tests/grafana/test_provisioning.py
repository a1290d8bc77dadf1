"""The provisioning files parse, reference the one datasource uid and keep alerts out of dashboards."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.grafana.conftest import (
    DASHBOARDS_DIR,
    DATASOURCE_UID,
    PROVISIONING_DIR,
    alert_rules,
    load_dashboards,
    load_yaml,
)

ENV_REFERENCE = re.compile(r"^\$\{?([A-Z_][A-Z0-9_]*)\}?$")
EXPECTED_DASHBOARDS = {"data_quality.json": "churn-data-quality", "drift_predictions.json": "churn-drift"}


def _walk(node: Any) -> list[dict[str, Any]]:
    """Every dict inside a JSON/YAML tree."""
    if isinstance(node, dict):
        return [node, *[d for value in node.values() for d in _walk(value)]]
    if isinstance(node, list):
        return [d for value in node for d in _walk(value)]
    return []


def test_every_provisioning_file_parses_with_api_version_1() -> None:
    files = sorted(PROVISIONING_DIR.rglob("*.yaml"))
    assert {f.relative_to(PROVISIONING_DIR).as_posix() for f in files} == {
        "datasources/postgres.yaml", "dashboards/dashboards.yaml", "alerting/rules.yaml",
        "alerting/contact_points.yaml", "alerting/policies.yaml",
        "datasources/prometheus.yaml", "alerting/service_rules.yaml",  # test_prometheus_alerts.py
    }
    for path in files:
        assert load_yaml(path)["apiVersion"] == 1, path


def test_datasource_is_the_read_only_role_from_the_environment() -> None:
    (source,) = load_yaml(PROVISIONING_DIR / "datasources" / "postgres.yaml")["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "grafana-postgresql-datasource"
    assert ENV_REFERENCE.match(source["user"]).group(1) == "GRAFANA_DB_USER"
    # the password is a secret: only in secureJsonData, only from the environment
    assert ENV_REFERENCE.match(source["secureJsonData"]["password"]).group(1) == "GRAFANA_DB_PASSWORD"
    assert "password" not in source and "password" not in source["jsonData"]
    assert ENV_REFERENCE.match(source["jsonData"]["database"]).group(1) == "GRAFANA_DB_NAME"
    assert "GRAFANA_DB_HOST" in source["url"] and "GRAFANA_DB_PORT" in source["url"]


def test_dashboard_provider_keeps_the_files_the_truth() -> None:
    (provider,) = load_yaml(PROVISIONING_DIR / "dashboards" / "dashboards.yaml")["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    # one provisioning file for both launchers: the folder comes from the environment...
    assert ENV_REFERENCE.match(provider["options"]["path"]).group(1) == "GRAFANA_DASHBOARDS_DIR"
    # ...which compose points at its mount of grafana/dashboards, and make run at the repo folder
    compose = load_yaml(PROVISIONING_DIR.parent.parent / "docker-compose.yml")
    grafana = compose["services"]["grafana"]
    mount = grafana["environment"]["GRAFANA_DASHBOARDS_DIR"]
    assert any(v.startswith("./grafana/dashboards:") and v.split(":")[1] == mount for v in grafana["volumes"])
    from launcher.services import REPO_ROOT, prepare_grafana_process

    environ: dict[str, str] = {}
    prepare_grafana_process(environ)
    assert environ["GRAFANA_DASHBOARDS_DIR"] == str(REPO_ROOT / "grafana" / "dashboards")


def test_dashboards_have_fixed_uids_refresh_and_no_alert_rules() -> None:
    dashboards = load_dashboards()
    assert {name: board["uid"] for name, board in dashboards.items()} == EXPECTED_DASHBOARDS
    for name, board in dashboards.items():
        assert board["schemaVersion"] >= 39, name
        assert board["refresh"] in ("30s", "1m"), name
        assert board["time"]["to"] == "now" and board["time"]["from"].startswith("now-"), name
        assert board["timepicker"]["quick_ranges"], name
        assert not any("alert" in node for node in _walk(board)), f"{name} carries an alert rule"


@pytest.mark.parametrize("name", sorted(EXPECTED_DASHBOARDS))
def test_every_panel_queries_the_datasource_and_states_its_thresholds(name: str) -> None:
    board = load_dashboards()[name]
    assert len(board["panels"]) >= 6
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "grafana-postgresql-datasource", "uid": DATASOURCE_UID}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
            assert target["rawSql"].strip(), panel["title"]
        # the colours mean something, and the description says what
        assert len(panel["description"]) > 60, panel["title"]
        thresholds = [n for n in _walk(panel["fieldConfig"]) if n.get("mode") == "absolute"]
        assert thresholds, f"{panel['title']} has no thresholds"
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    assert (DASHBOARDS_DIR / name).read_text().endswith("\n")


def test_threshold_colours_are_green_orange_red() -> None:
    colours = {
        step["color"]
        for board in load_dashboards().values()
        for node in _walk(board) if node.get("mode") == "absolute"
        for step in node["steps"]
    }
    assert {"green", "orange", "red"} <= colours <= {"green", "orange", "red"}


def test_alert_rules_query_the_datasource_and_end_in_a_threshold() -> None:
    rules = alert_rules()
    assert len(rules) >= 4
    assert len({r["uid"] for r in rules}) == len(rules)
    for rule in rules:
        by_ref = {q["refId"]: q for q in rule["data"]}
        query = by_ref["A"]
        assert query["datasourceUid"] == DATASOURCE_UID, rule["title"]
        assert query["relativeTimeRange"]["from"] > query["relativeTimeRange"]["to"] == 0
        assert "now()" not in query["model"]["rawSql"]  # the window comes from the evaluation time
        condition = by_ref[rule["condition"]]
        assert condition["datasourceUid"] == "__expr__"
        assert condition["model"]["type"] == "threshold"
        assert by_ref[condition["model"]["expression"]]["model"]["type"] == "reduce"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert rule["dashboardUid"] in EXPECTED_DASHBOARDS.values()


def test_alerts_reach_teams_through_the_policy() -> None:
    (contact,) = load_yaml(PROVISIONING_DIR / "alerting" / "contact_points.yaml")["contactPoints"]
    (receiver,) = contact["receivers"]
    assert receiver["type"] == "teams"
    assert ENV_REFERENCE.match(receiver["settings"]["url"]).group(1) == "GRAFANA_TEAMS_WEBHOOK_URL"
    (policy,) = load_yaml(PROVISIONING_DIR / "alerting" / "policies.yaml")["policies"]
    assert policy["receiver"] == contact["name"]
    assert all(route["receiver"] == contact["name"] for route in policy.get("routes", []))
