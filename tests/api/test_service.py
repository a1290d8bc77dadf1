"""/model, /health, /metrics, /reports and the optional token, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx

from model.contract import record_json_schema
from model.train import ARTIFACTS_DIR, METADATA_FILE
from tests.api.conftest import stored_count
from tests.factories import customer_record


def test_model_describes_the_served_model_and_the_record_schema(api_url: str) -> None:
    metadata = json.loads((ARTIFACTS_DIR / METADATA_FILE).read_text())

    body = httpx.get(f"{api_url}/model").json()

    assert body["model_version"] == metadata["model_version"]
    assert body["metrics"] == metadata["metrics"]
    assert body["threshold"] == metadata["threshold"]
    assert body["training_churn_rate"] == metadata["training_churn_rate"]
    assert body["record_schema"] == record_json_schema()


def test_health_reports_database_and_model(api_url: str) -> None:
    response = httpx.get(f"{api_url}/health")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("status", "database", "model")} == {
        "status": "ok", "database": "ok", "model": "ok"}
    assert body["serving"]["served"]["source"] == "local"  # no registry configured
    assert body["serving"]["registry"]["enabled"] is False and body["serving"]["agrees_with_registry"] is None
    assert httpx.get(f"{api_url}/health/live").json() == {"status": "ok"}
    assert httpx.get(f"{api_url}/health/ready").json() == {"status": "ok", "database": "ok", "model": "ok"}


def test_without_a_model_health_is_503_and_predict_refuses(
    api_with_env: Callable[[dict[str, str]], str], clean_db: str, tmp_path: Path,
) -> None:
    api = api_with_env({"MODEL_ARTIFACTS_DIR": str(tmp_path)})

    health = httpx.get(f"{api}/health")
    assert health.status_code == 503
    assert {k: health.json()[k] for k in ("status", "database", "model")} == {
        "status": "degraded", "database": "ok", "model": "down"}
    assert health.json()["serving"]["served"] is None
    assert httpx.get(f"{api}/health/ready").status_code == 503
    assert httpx.get(f"{api}/health/live").status_code == 200  # the process answers: no restart
    refused = httpx.post(f"{api}/predict", json={"source": "webapp", "records": [customer_record()]})
    assert refused.status_code == 503
    assert "model.train" in refused.json()["detail"]
    assert stored_count() == 0


def test_metrics_count_requests_and_predictions_per_label_and_source(api_url: str, clean_db: str) -> None:
    predictions = httpx.post(
        f"{api_url}/predict", json={"source": "scheduled", "records": [customer_record()] * 3},
    ).json()["predictions"]
    label = predictions[0]["label"]

    metrics = httpx.get(f"{api_url}/metrics").text

    counted = _sample(metrics, f'churn_predictions_total{{label="{label}",source="scheduled"}}')
    assert counted >= 3
    assert _sample(metrics, 'http_requests_total{handler="/predict",method="POST",status="2xx"}') >= 1
    assert 'http_request_duration_seconds_bucket{handler="/predict"' in metrics
    assert _sample(metrics, "churn_model_call_records_sum") >= 3  # records per model call


def test_the_error_series_exist_at_zero_before_any_error(
    api_with_env: Callable[[dict[str, str]], str], clean_db: str,
) -> None:
    """Prometheus's rate() never counts what a counter held when first scraped: the 5xx series
    of every watched endpoint exists at 0 from the start, so an outage's first errors count in
    the error-rate alert (they counted 23 % where 50 % failed when the series was born with them)."""
    from api.main import ERROR_RATE_ENDPOINTS

    api = api_with_env({})
    metrics = httpx.get(f"{api}/metrics").text
    for method, handler in ERROR_RATE_ENDPOINTS:
        series = f'http_requests_total{{handler="{handler}",method="{method}",status="5xx"}}'
        assert _sample(metrics, series) == 0


def test_metrics_name_each_request_by_its_route_and_leave_out_metrics_itself(
    api_with_env: Callable[[dict[str, str]], str], clean_db: str,
) -> None:
    """The series the service dashboard and the error-rate alert read (api/metrics.py): `handler` is
    the route's template, "none" for a path no route serves (a scan creates no series per path),
    the mount for /reports; a route's wrong method is its 4xx; /metrics counts nothing."""
    api = api_with_env({})
    one = {"source": "webapp", "records": [customer_record()]}
    assert httpx.post(f"{api}/predict", json=one).status_code == 200  # the one-record path
    assert httpx.post(f"{api}/predict", json={"source": "webapp", "records": []}).status_code == 422
    assert httpx.post(f"{api}/predict", json={**one, "records": [customer_record()] * 2}).status_code == 200
    for path in ("/wp-login.php", "/.env", "/admin/1"):
        assert httpx.get(f"{api}{path}").status_code == 404
    assert httpx.get(f"{api}/predict").status_code == 405
    assert httpx.get(f"{api}/reports/validations/none.html").status_code == 404
    for _ in range(3):
        httpx.get(f"{api}/metrics")

    metrics = httpx.get(f"{api}/metrics").text

    assert _sample(metrics, 'http_requests_total{handler="/predict",method="POST",status="2xx"}') == 2
    assert _sample(metrics, 'http_requests_total{handler="/predict",method="POST",status="4xx"}') == 1
    assert _sample(metrics, 'http_requests_total{handler="/predict",method="GET",status="4xx"}') == 1
    assert _sample(metrics, 'http_requests_total{handler="none",method="GET",status="4xx"}') == 3
    assert _sample(metrics, 'http_requests_total{handler="/reports",method="GET",status="4xx"}') == 1
    assert 'handler="/metrics"' not in metrics and "wp-login" not in metrics
    assert _sample(metrics, 'http_request_duration_seconds_count{handler="/predict",method="POST"}') == 3
    assert _sample(metrics, 'http_request_duration_highr_seconds_count') == 9  # every request above


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_token_protects_every_endpoint_but_health(
    api_with_env: Callable[[dict[str, str]], str], clean_db: str,
) -> None:
    api = api_with_env({"API_TOKEN": "s3cret-token"})
    good = {"Authorization": "Bearer s3cret-token"}
    wrong = {"Authorization": "Bearer guess"}
    body = {"source": "webapp", "records": [customer_record()]}
    window = {"start_date": "2026-01-01", "end_date": "2026-01-02"}

    for headers in ({}, wrong):
        assert httpx.post(f"{api}/predict", json=body, headers=headers).status_code == 401
        assert httpx.get(f"{api}/past-predictions", params=window, headers=headers).status_code == 401
        assert httpx.get(f"{api}/model", headers=headers).status_code == 401
        assert httpx.get(f"{api}/metrics", headers=headers).status_code == 401
    assert stored_count() == 0
    assert httpx.get(f"{api}/health").json()["status"] == "ok"

    accepted = httpx.post(f"{api}/predict", json=body, headers=good)
    assert accepted.status_code == 200
    assert stored_count() == 1
    assert httpx.get(f"{api}/past-predictions", params=window, headers=good).json()["total"] == 0
    assert httpx.get(f"{api}/model", headers=good).json()["model_version"]
    assert "churn_predictions_total" in httpx.get(f"{api}/metrics", headers=good).text


def test_reports_are_served_from_the_reports_folder(
    api_with_env: Callable[[dict[str, str]], str], tmp_path: Path,
) -> None:
    report = tmp_path / "reports" / "validations" / "run-1" / "index.html"
    api = api_with_env({"REPORTS_DIR": str(tmp_path / "reports")})
    report.parent.mkdir(parents=True)  # written after the API started, like the ingestion job does
    report.write_text("<html><body>Data Docs: 3 failed expectations</body></html>")

    response = httpx.get(f"{api}/reports/validations/run-1/index.html")

    assert response.status_code == 200
    assert "3 failed expectations" in response.text
    assert httpx.get(f"{api}/reports/validations/none.html").status_code == 404


def test_openapi_docs_are_served_with_an_example_that_works(api_url: str, clean_db: str) -> None:
    assert "swagger-ui" in httpx.get(f"{api_url}/docs").text.lower()
    schema = httpx.get(f"{api_url}/openapi.json").json()
    components = schema["components"]["schemas"]
    assert set(components["CustomerRecord"]["required"]) == set(record_json_schema()["required"])
    predict = schema["paths"]["/predict"]["post"]
    body = predict["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PredictionRequest"}
    # served by its own handler (api/routers/predictions.py: PredictRoute), documented as before
    parameters = [(p["name"], p["in"], p["schema"]["type"]) for p in predict["parameters"]]
    assert parameters == [("echo", "query", "boolean")]
    assert predict["security"] == [{"HTTPBearer": []}]
    assert {"200", "413", "422", "503"} <= set(predict["responses"])

    [example] = components["PredictionRequest"]["examples"]
    tried = httpx.post(f"{api_url}/predict", json=example)
    assert tried.status_code == 200
    assert tried.json()["predictions"][0]["customer_id"] == example["records"][0]["customer_id"]
