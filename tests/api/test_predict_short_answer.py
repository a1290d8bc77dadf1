"""POST /predict?echo=false: batch clients get ids, labels and probabilities only; the stored rows
keep everything (issue 25)."""

from __future__ import annotations

import httpx

from db.models import REASON_COLUMNS
from tests.api.conftest import stored_rows
from tests.factories import customer_record

SHORT_KEYS = {"id", "label", "churn_probability", "customer_id"}


def test_the_short_answer_leaves_out_features_and_reasons_but_stores_them(
    api_url: str, clean_db: str,
) -> None:
    records = [
        customer_record(customer_id="S1"), customer_record(customer_id="S2", tenure=30, total_charges=2100.0),
    ]
    request = {"source": "scheduled", "records": records, "batch_key": "short.csv:abc:0"}
    full = httpx.post(f"{api_url}/predict", json={**request, "batch_key": "full.csv:abc:0"}).json()
    short = httpx.post(f"{api_url}/predict", params={"echo": "false"}, json=request)

    assert short.status_code == 200, short.text
    answer = short.json()
    assert answer["model_version"] == full["model_version"] and answer["replayed"] is False
    assert [set(p) for p in answer["predictions"]] == [SHORT_KEYS, SHORT_KEYS]
    assert [(p["label"], p["churn_probability"], p["customer_id"]) for p in answer["predictions"]] == [
        (p["label"], p["churn_probability"], p["customer_id"]) for p in full["predictions"]
    ]
    stored = {row["id"]: row for row in stored_rows("batch_key = :key", key="short.csv:abc:0")}
    assert set(stored) == {p["id"] for p in answer["predictions"]}
    assert all(row["tenure"] is not None and row[REASON_COLUMNS[0]] is not None for row in stored.values())


def test_a_replay_answers_short_too(api_url: str, clean_db: str) -> None:
    request = {"source": "scheduled", "records": [customer_record()], "batch_key": "replay.csv:abc:0"}
    first = httpx.post(f"{api_url}/predict", params={"echo": "false"}, json=request).json()
    again = httpx.post(f"{api_url}/predict", params={"echo": "false"}, json=request).json()
    assert again["replayed"] is True
    assert again["predictions"] == first["predictions"]
    assert set(again["predictions"][0]) == SHORT_KEYS


def test_echo_takes_the_usual_spellings_of_a_bool_and_names_a_bad_one(api_url: str, clean_db: str) -> None:
    """`echo` is parsed by /predict's own handler (api/routers/predictions.py) as FastAPI parses a bool."""
    request = {"source": "webapp", "records": [customer_record()]}
    for given, echoed in (("0", False), ("off", False), ("FALSE", False), ("yes", True), ("1", True)):
        answer = httpx.post(f"{api_url}/predict", params={"echo": given}, json=request).json()
        assert ("features" in answer["predictions"][0]) is echoed, given
    stored = len(stored_rows("true"))

    refused = httpx.post(f"{api_url}/predict", params={"echo": "maybe"}, json=request)

    assert refused.status_code == 422
    [problem] = refused.json()["detail"]
    assert (problem["row"], problem["field"]) == (None, "echo") and "maybe" in problem["message"]
    assert len(stored_rows("true")) == stored  # nothing stored for the refused request
