"""POST /predict over real HTTP: what is returned is what is stored, in one transaction, once."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from model.contract import FEATURE_NAMES
from model.predictor import Predictor
from tests.api.conftest import stored_count, stored_rows
from tests.factories import customer_record


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor()


def test_single_prediction_is_stored_with_source_and_model_version(
    api_url: str, clean_db: str, predictor: Predictor,
) -> None:
    response = httpx.post(f"{api_url}/predict", json={"source": "webapp", "records": [customer_record()]})

    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == predictor.version
    assert body["replayed"] is False
    [prediction] = body["predictions"]
    [row] = stored_rows()
    assert row["id"] == prediction["id"]
    assert (row["source"], row["model_version"], row["file_name"]) == ("webapp", predictor.version, None)
    assert row["predicted_label"] == prediction["label"]
    assert row["churn_probability"] == pytest.approx(prediction["churn_probability"], abs=1e-12)
    expected = predictor.predict([customer_record()])[0]
    assert (prediction["label"], prediction["churn_probability"]) == (
        expected.label, pytest.approx(expected.probability, abs=1e-12)
    )


def test_batch_is_stored_in_request_order_with_exact_features(api_url: str, clean_db: str) -> None:
    records = [
        customer_record(tenure=0, monthly_charges=29.85, total_charges=None, customer_id="C00001"),
        customer_record(tenure=72, contract="Two year", monthly_charges=104.35, total_charges=7533.1),
        customer_record(tenure=0, internet_service="No", online_security="No internet service",
               monthly_charges=19.999999999999, total_charges=0.0, customer_id="C-ünï"),
    ]
    response = httpx.post(f"{api_url}/predict", json={
        "source": "scheduled", "records": records, "file_name": "part-0001.csv",
    })

    assert response.status_code == 200
    predictions = response.json()["predictions"]
    rows = {row["id"]: row for row in stored_rows()}
    assert len(rows) == 3
    for sent, returned in zip(records, predictions, strict=True):
        expected_features = {name: sent[name] for name in FEATURE_NAMES}
        assert returned["features"] == expected_features
        assert returned["customer_id"] == sent.get("customer_id")
        row = rows[returned["id"]]
        assert {name: row[name] for name in FEATURE_NAMES} == expected_features  # exact, no rounding
        assert (row["source"], row["file_name"], row["customer_id"]) == (
            "scheduled", "part-0001.csv", sent.get("customer_id")
        )
    assert [p["id"] for p in predictions] == sorted(p["id"] for p in predictions)


def test_labels_follow_the_model_threshold(api_url: str, clean_db: str, predictor: Predictor) -> None:
    records = [customer_record(contract="Month-to-month", tenure=1, total_charges=70.0),
               customer_record(contract="Two year", tenure=70, total_charges=4900.0, internet_service="DSL")]
    predictions = httpx.post(
        f"{api_url}/predict", json={"source": "webapp", "records": records}
    ).json()["predictions"]

    for prediction in predictions:
        assert prediction["label"] == int(prediction["churn_probability"] >= predictor.threshold)
    assert predictions[0]["churn_probability"] > predictions[1]["churn_probability"]


def test_a_replayed_batch_key_returns_the_stored_batch_and_inserts_nothing(
    api_url: str, clean_db: str,
) -> None:
    records = [customer_record(), customer_record(tenure=30, total_charges=2100.0)]
    request = {"source": "scheduled", "records": records,
               "file_name": "part-0002.csv", "batch_key": "part-0002.csv:abc123:0"}
    first = httpx.post(f"{api_url}/predict", json=request).json()
    retry = httpx.post(f"{api_url}/predict", json=request).json()

    assert first["replayed"] is False
    assert retry["replayed"] is True
    assert retry["predictions"] == first["predictions"]
    assert stored_count() == 2
    assert {row["batch_key"] for row in stored_rows()} == {"part-0002.csv:abc123:0"}


def test_echo_false_answers_without_features_and_reasons_and_stores_them_all(
    api_url: str, clean_db: str,
) -> None:
    """A batch client that does not read them asks for no echoed features and reasons: the answer
    carries id, label, probability and customer id; the stored rows keep everything."""
    records = [customer_record(customer_id="C1"), customer_record(tenure=30, total_charges=2100.0)]
    request = {"source": "scheduled", "records": records, "batch_key": "part-0009.csv:e:0"}
    slim = httpx.post(f"{api_url}/predict", params={"echo": "false"}, json=request).json()
    replayed_slim = httpx.post(f"{api_url}/predict", params={"echo": "false"}, json=request).json()
    replayed_full = httpx.post(f"{api_url}/predict", json=request).json()

    answered = ["churn_probability", "customer_id", "id", "label"]
    assert [sorted(p) for p in slim["predictions"]] == [answered] * 2
    assert [p["customer_id"] for p in slim["predictions"]] == ["C1", None]
    assert replayed_slim["replayed"] is True and replayed_slim["predictions"] == slim["predictions"]
    # what the default answer would have echoed is stored: features and reason codes
    full = replayed_full["predictions"]
    assert [{k: p[k] for k in answered} for p in full] == slim["predictions"]
    assert full[1]["features"]["tenure"] == 30 and len(full[1]["reasons"]) == 3
    assert all(row["reason_1_feature"] is not None and row["tenure"] is not None for row in stored_rows())
    assert stored_count() == 2


def test_concurrent_twins_with_one_batch_key_are_stored_once(api_url: str, clean_db: str) -> None:
    """A retry racing the original (a timed-out client): one stores, the other replays it."""
    request = {"source": "scheduled", "batch_key": "part-0003.csv:def456:0",
               "records": [customer_record(tenure=i % 72, total_charges=70.0 * (i % 72)) for i in range(500)]}
    answers: list[dict] = []

    def send() -> None:
        answers.append(httpx.post(f"{api_url}/predict", json=request, timeout=60).json())

    twins = [threading.Thread(target=send) for _ in range(2)]
    for twin in twins:
        twin.start()
    for twin in twins:
        twin.join()

    assert sorted(answer["replayed"] for answer in answers) == [False, True]
    assert answers[0]["predictions"] == answers[1]["predictions"]
    assert stored_count() == 500


def test_a_large_batch_is_stored_whole(api_url: str, clean_db: str) -> None:
    records = [customer_record(tenure=i % 100, total_charges=70.0 * (i % 100)) for i in range(2_000)]
    response = httpx.post(
        f"{api_url}/predict", json={"source": "scheduled", "records": records}, timeout=60,
    )

    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 2_000
    assert stored_count() == 2_000
    assert [row["tenure"] for row in stored_rows()] == [i % 100 for i in range(2_000)]


def test_request_body_is_plain_json(api_url: str, clean_db: str) -> None:
    """JSON with the UTF-8 content type and no other framing; a form upload is refused (415: not JSON)."""
    response = httpx.post(
        f"{api_url}/predict", content=json.dumps({"source": "webapp", "records": [customer_record()]}),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200
    upload = httpx.post(f"{api_url}/predict", files={"file": ("a.csv", b"tenure\n1\n")})
    assert upload.status_code == 415
    assert stored_count() == 1
