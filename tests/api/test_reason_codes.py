"""Reason codes over real HTTP: returned by /predict, stored, read back, and exact for the model."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest

from db.models import REASON_COLUMNS
from db.predictions import create_predictions
from db.session import session_scope
from model.contract import FEATURE_NAMES
from model.data import records_to_frame
from model.predictor import Predictor
from model.reasons import TOP_REASONS, contributions
from tests.api.conftest import stored_rows
from tests.factories import customer_record, dataset_records

ROWS = 400
LOGIT_TOLERANCE = 1e-4  # float32 arithmetic inside the ONNX graph (exact in float64: tests/model)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor()


def _logit(probability: float) -> float:
    return math.log(probability / (1 - probability))


def _history(api_url: str, limit: int = 1000) -> list[dict]:
    today = datetime.now(UTC).date()
    response = httpx.get(f"{api_url}/past-predictions", params={
        "start_date": str(today - timedelta(days=1)), "end_date": str(today + timedelta(days=1)),
        "limit": limit,
    })
    assert response.status_code == 200
    return response.json()["items"]


def test_predict_returns_the_top_three_reasons_with_the_record_values(api_url: str, clean_db: str) -> None:
    record = customer_record(contract="Month-to-month", tenure=1, total_charges=70.0, customer_id="R1")
    [prediction] = httpx.post(
        f"{api_url}/predict", json={"source": "webapp", "records": [record]}).json()["predictions"]

    reasons = prediction["reasons"]
    assert len(reasons) == TOP_REASONS
    assert [abs(r["contribution"]) for r in reasons] == sorted((abs(r["contribution"]) for r in reasons),
                                                               reverse=True)
    for reason in reasons:
        assert reason["feature"] in FEATURE_NAMES
        assert reason["value"] == record[reason["feature"]]
    assert {r["feature"]: r["contribution"] for r in reasons}.get("tenure", 1.0) > 0  # one month: risk
    [row] = stored_rows()
    stored = [row[name] for name in REASON_COLUMNS]
    assert stored[0::2][:TOP_REASONS] == [r["feature"] for r in reasons]
    assert stored[1::2][:TOP_REASONS] == [r["contribution"] for r in reasons]
    assert row["rest_contribution"] == prediction["rest_contribution"]


def test_stored_contributions_plus_intercept_equal_the_logit(
    api_url: str, clean_db: str, predictor: Predictor,
) -> None:
    """For every row read back through GET /past-predictions: top three + rest + intercept = logit(p),
    and the top three are the model's own largest contributions, recomputed independently."""
    records = dataset_records(ROWS)
    assert httpx.post(f"{api_url}/predict", json={"source": "scheduled", "records": records},
                      timeout=60).status_code == 200
    intercept = httpx.get(f"{api_url}/model").json()["intercept"]
    assert intercept == pytest.approx(float(predictor.pipeline[-1].intercept_[0]), abs=1e-12)
    items = sorted(_history(api_url), key=lambda item: item["id"])
    assert len(items) == ROWS

    for item in items:
        total = sum(r["contribution"] for r in item["reasons"]) + item["rest_contribution"] + intercept
        assert total == pytest.approx(_logit(item["churn_probability"]), abs=LOGIT_TOLERANCE), item["id"]

    # independently: scikit-learn's transform in float64, coefficients folded per feature
    transformed = predictor.pipeline[:-1].transform(records_to_frame([i["features"] for i in items]))
    exact = contributions(transformed, predictor.reason_weights)
    for item, row in zip(items, exact, strict=True):
        expected = {FEATURE_NAMES[j]: row[j] for j in np.argsort(-np.abs(row))[:TOP_REASONS]}
        got = {r["feature"]: r["contribution"] for r in item["reasons"]}
        assert got == pytest.approx(expected, abs=LOGIT_TOLERANCE), item["id"]
        assert item["rest_contribution"] == pytest.approx(row.sum() - sum(expected.values()),
                                                          abs=LOGIT_TOLERANCE)


def test_a_replayed_batch_returns_the_stored_reasons(api_url: str, clean_db: str) -> None:
    body = {"source": "scheduled", "records": dataset_records(5), "batch_key": "reasons:1"}
    first = httpx.post(f"{api_url}/predict", json=body).json()
    again = httpx.post(f"{api_url}/predict", json=body).json()

    assert again["replayed"] is True
    for before, after in zip(first["predictions"], again["predictions"], strict=True):
        assert after["reasons"] == before["reasons"]
        assert after["rest_contribution"] == before["rest_contribution"]


def test_rows_stored_without_reasons_are_listed_with_none(api_url: str, clean_db: str) -> None:
    """A prediction stored before reason codes existed (NULL columns) reads back with no reasons."""
    with session_scope() as session:
        create_predictions(session=session, source="webapp", records=[customer_record()], labels=[0],
                           probabilities=[0.2], model_version="old")
    [item] = _history(api_url)
    assert (item["reasons"], item["rest_contribution"]) == ([], None)
