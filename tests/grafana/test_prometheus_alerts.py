"""The service alert rules (grafana/provisioning/alerting/service_rules.yaml, Prometheus group) and the
service dashboard, evaluated by a real Prometheus (Debian's package, loopback, free port, own data).

The error-rate and not-scraped rules run on the real API: Prometheus scrapes its /metrics with the
token exactly as `make run` configures it (launcher/services.py renders prometheus/prometheus.yml),
healthy traffic is sent, then the database is stopped (an outage: every /predict answers 503).
Each rule's PromQL is evaluated through Prometheus' HTTP API at chosen moments, then reduced and
compared with its threshold as Grafana does (B = last, C = threshold); an empty answer is Grafana's
No Data, which the rule's noDataState decides.

The model-state rules read h22a's gauges (churn_model_admission_refusals_total,
churn_model_registry_agreement, churn_model_registry_reachable, churn_model_served_info). Until that
branch is merged the API does not publish them, so an exporter in this test publishes series with
the same names and types (prometheus_client, the library the API uses); the PromQL is the same.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from core.settings import DatabaseSettings
from db import embedded
from db.manage import migrate
from launcher.api_token import ensure_token_file
from launcher.services import render_prometheus_config
from tests.api_server import free_port, start_api_server
from tests.factories import customer_record
from tests.grafana.conftest import DASHBOARDS_DIR, PROVISIONING_DIR
from tests.prometheus_server import HOST, instant_query, scrape_config, start_prometheus, wait_for_series

pytestmark = pytest.mark.timeout(300)
PROMETHEUS_UID = "churn-prometheus"
RULES_FILE = PROVISIONING_DIR / "alerting" / "service_rules.yaml"


def service_rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return {rule["uid"]: rule for group in groups for rule in group["rules"]}


def firing(rule: dict[str, Any], prometheus: str, at: float) -> bool:
    """The rule's state at unix time `at` as Grafana computes it (any series firing), No Data included."""
    by_ref = {q["refId"]: q for q in rule["data"]}
    condition = by_ref[rule["condition"]]["model"]
    assert by_ref[condition["expression"]]["model"]["reducer"] == "last"
    vector = instant_query(prometheus, by_ref["A"]["model"]["expr"], at)
    if not vector:
        return bool(rule["noDataState"] == "Alerting")
    (evaluator,) = [c["evaluator"] for c in condition["conditions"]]
    limit = evaluator["params"][0]
    holds = {"gt": lambda v: v > limit, "lt": lambda v: v < limit}[evaluator["type"]]
    return any(holds(value) for _labels, value in vector)


def value(rule: dict[str, Any], prometheus: str, at: float) -> list[float]:
    by_ref = {q["refId"]: q for q in rule["data"]}
    return [v for _labels, v in instant_query(prometheus, by_ref["A"]["model"]["expr"], at)]


# --- the real API -----------------------------------------------------------------------------------

@pytest.fixture
def throwaway_database() -> Iterator[DatabaseSettings]:
    """An embedded PostgreSQL of this test's own (stopped mid-test: the shared server never is).

    Its folder is outside pytest's temporary root: as root, the server runs as an unprivileged user,
    and every pytest run (other sessions' included) resets that root to owner-only.
    """
    folder = Path(tempfile.mkdtemp(prefix="churn-alerts-pg-"))
    folder.chmod(0o755)
    settings = DatabaseSettings(
        _env_file=None, database_url=None, embedded_pg_dir=folder / "pg",
        embedded_pg_port=free_port(HOST), embedded_pg_database="alerts",
    )
    migrate(embedded.ensure_running(settings))
    yield settings
    embedded.stop(settings)
    shutil.rmtree(folder, ignore_errors=True)


def test_error_rate_and_scrape_alerts_on_the_real_api(
    throwaway_database: DatabaseSettings, tmp_path: Path,
) -> None:
    token_file = tmp_path / "api-token"
    token = ensure_token_file(token_file)
    api, stop_api = start_api_server(embedded.server_url(throwaway_database),
                                     env={"API_TOKEN": "", "API_TOKEN_FILE": str(token_file)})
    stops = [stop_api]
    try:
        port = free_port(HOST)
        config = render_prometheus_config(
            tmp_path / "prometheus", api_target=api.removeprefix("http://"), api_token=token,
            prometheus_target=f"{HOST}:{port}", scrape_interval_seconds=1,
        )
        prometheus, stop_prometheus = start_prometheus(config, tmp_path / "prometheus" / "data", port)
        stops.append(stop_prometheus)
        _error_rate_and_scrape_episode(api, token, prometheus, stop_api, throwaway_database)
    finally:
        for stop in stops:
            stop()


def _error_rate_and_scrape_episode(
    api: str, token: str | None, prometheus: str, stop_api: Callable[[], None], database: DatabaseSettings,
) -> None:
    """Healthy traffic, a database outage, then the API down: each rule's state at each moment."""
    rules = service_rules()
    error_rate, not_scraped = rules["churn-api-error-rate"], rules["churn-api-not-scraped"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {"source": "webapp", "records": [customer_record()]}
    # /metrics wants the token: up = 1 proves Prometheus sends the one make run gave it
    assert wait_for_series(prometheus, 'up{job="churn-api"} == 1')
    assert not firing(not_scraped, prometheus, time.time())
    # no traffic yet: fewer than 20 requests is No Data, which this rule treats as OK
    assert value(error_rate, prometheus, time.time()) == []
    assert not firing(error_rate, prometheus, time.time())

    for _ in range(40):
        assert httpx.post(f"{api}/predict", json=body, headers=headers).status_code == 200
    time.sleep(3)
    healthy = time.time()
    assert value(error_rate, prometheus, healthy) == [0.0]
    assert not firing(error_rate, prometheus, healthy)

    assert embedded.stop(database)  # the bad episode: the database goes away
    for _ in range(40):
        assert httpx.post(f"{api}/predict", json=body, headers=headers).status_code == 503
    time.sleep(3)
    outage = time.time()
    (share,) = value(error_rate, prometheus, outage)
    print(f"\nerror-rate rule: {share:.1%} 5xx in the outage (threshold 5 %), 0.0 % before")
    assert 0.3 < share < 0.7  # 40 of 80 requests in the window
    assert firing(error_rate, prometheus, outage)
    assert not firing(error_rate, prometheus, healthy)  # the past stays as it was

    stop_api()  # the API goes down: scrapes fail from now on
    time.sleep(3)
    down = time.time()
    assert not firing(not_scraped, prometheus, down)  # 2 minutes have not passed
    # had it stayed down for 2 minutes: the window then holds only failed scrapes
    assert firing(not_scraped, prometheus, down + 118)


# --- the served model's gauges ------------------------------------------------------------------------

@pytest.fixture
def model_gauges(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A real Prometheus scraping an exporter of h22a's gauges (names, labels and types as in its
    api/serving.py ServingMetrics: the counter grows once per poll that still finds an alias on a
    refused version)."""
    registry = CollectorRegistry()
    metrics: dict[str, Any] = {
        "refusals": Counter("churn_model_admission_refusals", "Versions refused at admission",
                            ["alias", "version", "reason"], registry=registry),
        "agreement": Gauge("churn_model_registry_agreement", "1: served = registry champion",
                           registry=registry),
        "reachable": Gauge("churn_model_registry_reachable", "1: the registry answered the last poll",
                           registry=registry),
        "served": Gauge("churn_model_served_info", "The served version", ["version", "alias"],
                        registry=registry),
    }
    metrics["agreement"].set(1)
    metrics["reachable"].set(1)
    metrics["served"].labels(version="2", alias="champion").set(1)
    exporter_port = free_port(HOST)
    server, thread = start_http_server(exporter_port, addr=HOST, registry=registry)
    config = tmp_path / "prometheus.yml"
    config.write_text(scrape_config({"churn-api": f"{HOST}:{exporter_port}"}))
    prometheus, stop = start_prometheus(config, tmp_path / "data")
    try:
        wait_for_series(prometheus, "churn_model_registry_agreement")
        yield prometheus, metrics
    finally:
        stop()
        server.shutdown()
        thread.join(timeout=5)


def test_a_refused_version_alerts_for_ten_minutes_then_resolves(
    model_gauges: tuple[str, dict[str, Any]],
) -> None:
    prometheus, metrics = model_gauges
    refused = service_rules()["churn-model-refused"]
    time.sleep(2)
    assert value(refused, prometheus, time.time()) == [0.0]  # never refused: 0, not No Data
    assert not firing(refused, prometheus, time.time())

    reason = "graph inputs differ from the contract"
    metrics["refusals"].labels(alias="champion", version="3", reason=reason).inc()
    time.sleep(3)
    refused_at = time.time()
    assert value(refused, prometheus, refused_at) == [1.0]  # the series' first refusal counts
    assert firing(refused, prometheus, refused_at)
    # with no further refusal the alert resolves once the refusal is 10 minutes old
    assert not firing(refused, prometheus, refused_at + 11 * 60)


def test_disagreement_alerts_only_when_it_outlasts_two_polls(
    model_gauges: tuple[str, dict[str, Any]],
) -> None:
    prometheus, metrics = model_gauges
    disagrees = service_rules()["churn-model-registry-disagrees"]
    time.sleep(2)
    assert not firing(disagrees, prometheus, time.time())

    metrics["agreement"].set(0)  # one poll's blip (a follow in progress), then agreement again
    time.sleep(2)
    metrics["agreement"].set(1)
    time.sleep(2)
    assert not firing(disagrees, prometheus, time.time())

    metrics["agreement"].set(0)  # the alias moved to a version the API does not serve
    time.sleep(4)
    now = time.time()
    assert not firing(disagrees, prometheus, now)  # a minute has not passed yet
    assert firing(disagrees, prometheus, now + 58)  # every scrape of the last minute disagreed


def test_an_unreachable_registry_alerts_after_five_minutes(model_gauges: tuple[str, dict[str, Any]]) -> None:
    prometheus, metrics = model_gauges
    unreachable = service_rules()["churn-registry-unreachable"]
    metrics["reachable"].set(0)
    time.sleep(4)
    now = time.time()
    assert not firing(unreachable, prometheus, now)
    assert firing(unreachable, prometheus, now + 296)


def test_without_a_registry_the_model_rules_see_no_data_and_stay_normal(tmp_path: Path) -> None:
    """MLFLOW_TRACKING_URI unset: no agreement or reachability gauge. No Data is OK for these rules."""
    config = tmp_path / "prometheus.yml"
    config.write_text(scrape_config({"churn-api": f"{HOST}:{free_port(HOST)}"}))  # nothing listens
    prometheus, stop = start_prometheus(config, tmp_path / "data")
    try:
        wait_for_series(prometheus, 'up{job="churn-api"}')
        rules = service_rules()
        now = time.time()
        for uid in ("churn-model-registry-disagrees", "churn-registry-unreachable", "churn-model-refused",
                    "churn-api-error-rate"):
            assert not firing(rules[uid], prometheus, now), uid
        # ...while the scrape rule sees the API down (up = 0) once it lasts 2 minutes
        assert firing(rules["churn-api-not-scraped"], prometheus, now + 118)
    finally:
        stop()


def test_every_service_rule_and_panel_parses_in_prometheus(model_gauges: tuple[str, dict[str, Any]]) -> None:
    """Every PromQL of the rules and the dashboard is valid for this Prometheus (the dashboard's
    $__rate_interval is Grafana's: 4 scrape intervals here)."""
    prometheus, _ = model_gauges
    board = json.loads((DASHBOARDS_DIR / "service.json").read_text())
    expressions = [target["expr"].replace("$__rate_interval", "1m")
                   for panel in board["panels"] for target in panel["targets"]]
    expressions += [rule["data"][0]["model"]["expr"] for rule in service_rules().values()
                    if rule["data"][0]["datasourceUid"] == PROMETHEUS_UID]
    for expr in expressions:
        instant_query(prometheus, expr, time.time())  # raises on a parse error
    served = instant_query(prometheus, "churn_model_served_info", time.time())
    assert [labels["version"] for labels, _ in served] == ["2"]


# --- the provisioning files ------------------------------------------------------------------------------

def test_prometheus_datasource_has_a_fixed_uid_and_its_url_from_the_environment() -> None:
    datasources = yaml.safe_load((PROVISIONING_DIR / "datasources" / "prometheus.yaml").read_text())
    (source,) = datasources["datasources"]
    assert (source["uid"], source["type"], source["isDefault"]) == (PROMETHEUS_UID, "prometheus", False)
    assert source["url"] == "${PROMETHEUS_URL}"
    from launcher.services import prepare_grafana_process

    environ: dict[str, str] = {}
    prepare_grafana_process(environ)  # make run: its own Prometheus unless PROMETHEUS_URL says
    assert environ["PROMETHEUS_URL"] == "http://127.0.0.1:9090"
    environ = {"PROMETHEUS_URL": "http://prometheus:9090"}
    prepare_grafana_process(environ)
    assert environ["PROMETHEUS_URL"] == "http://prometheus:9090"


def test_service_dashboard_has_a_fixed_uid_and_every_panel_on_prometheus() -> None:
    board = json.loads((DASHBOARDS_DIR / "service.json").read_text())
    assert board["uid"] == "churn-service" and board["refresh"] == "30s" and board["schemaVersion"] >= 39
    titles = {panel["title"] for panel in board["panels"]}
    assert {"Request rate by endpoint", "Latency p50 and p99", "Error rate (5xx share of requests)",
            "Served model version", "Admission refusals, last 10 minutes"} <= titles
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": PROMETHEUS_UID}, panel["title"]
        assert all(t["datasource"]["uid"] == PROMETHEUS_UID and t["expr"] for t in panel["targets"])
        assert len(panel["description"]) > 60, panel["title"]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert {step["color"] for step in steps} <= {"green", "orange", "red"}, panel["title"]
        assert not any("alert" in key for key in panel)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def test_every_service_rule_chooses_its_states_and_points_at_a_panel() -> None:
    board = json.loads((DASHBOARDS_DIR / "service.json").read_text())
    panel_ids = {panel["id"] for panel in board["panels"]}
    comments = RULES_FILE.read_text()
    for uid, rule in service_rules().items():
        assert rule["noDataState"] in ("OK", "Alerting", "NoData")
        assert rule["execErrState"] in ("Error", "Alerting")
        by_ref = {q["refId"]: q for q in rule["data"]}
        assert by_ref[rule["condition"]]["model"]["type"] == "threshold"
        assert by_ref["B"]["model"]["reducer"] == "last"
        assert rule["dashboardUid"] == "churn-service" and rule["panelId"] in panel_ids, uid
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        # the choice is written down: a comment above the rule names its no-data and error states
        above = comments.split(f"- uid: {uid}")[0].rsplit("- uid:", 1)[-1]
        assert "# No data" in above, uid
