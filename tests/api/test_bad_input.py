"""Every kind of bad input is a 4xx that names the row and the field, and stores nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.conftest import stored_count
from tests.factories import customer_record

WITHOUT_TENURE = {k: v for k, v in customer_record().items() if k != "tenure"}

# (case, the bad record placed at index 1 of three, the field the error must name)
BAD_RECORDS: list[tuple[str, dict[str, Any], str]] = [
    ("missing field", WITHOUT_TENURE, "tenure"),
    ("unknown field", customer_record(favourite_colour="blue"), "favourite_colour"),
    ("number as text", customer_record(tenure="12"), "tenure"),
    ("float as text", customer_record(monthly_charges="70.5"), "monthly_charges"),
    ("boolean for a flag", customer_record(female=True), "female"),
    ("fraction for an integer", customer_record(tenure=12.5), "tenure"),
    ("number for a category", customer_record(contract=2), "contract"),
    ("below the minimum", customer_record(tenure=-1), "tenure"),
    ("above the maximum", customer_record(monthly_charges=200.01), "monthly_charges"),
    ("flag out of its set", customer_record(senior_citizen=2), "senior_citizen"),
    ("unknown category", customer_record(contract="Monthly"), "contract"),
    ("null where required", customer_record(tenure=None), "tenure"),
    ("NaN as text", customer_record(monthly_charges="NaN"), "monthly_charges"),
    ("customer id not text", customer_record(customer_id=12), "customer_id"),
    ("customer id too long", customer_record(customer_id="C" * 65), "customer_id"),
    ("NUL in the customer id", customer_record(customer_id="C\x0042"), "customer_id"),
    ("inconsistent charges", customer_record(tenure=60, monthly_charges=100.0, total_charges=10.0),
     "total_charges"),
    # only a first-month customer (tenure 0) has no total charges yet
    ("empty total charges after months", customer_record(tenure=34, total_charges=None), "total_charges"),
]


def _assert_names(response: httpx.Response, row: int | None, field: str) -> None:
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert {"row": row, "field": field} in [{"row": e["row"], "field": e["field"]} for e in errors], errors
    assert all(error["message"] for error in errors)


@pytest.mark.parametrize(("case", "bad", "field"), BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS])
def test_bad_record_is_named_by_row_and_field_and_nothing_is_stored(
    api_url: str, clean_db: str, case: str, bad: dict[str, Any], field: str,
) -> None:
    response = httpx.post(
        f"{api_url}/predict",
        json={"source": "webapp", "records": [customer_record(), bad, customer_record()]},
    )
    _assert_names(response, row=1, field=field)
    assert stored_count() == 0


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(api_url: str, clean_db: str, token: str) -> None:
    """Python's JSON parser reads these non-standard tokens; the schema must still refuse them."""
    body = json.dumps({"source": "webapp", "records": [customer_record(), customer_record()]})
    body = body.replace('"monthly_charges": 70.0', f'"monthly_charges": {token}', 1)
    response = httpx.post(f"{api_url}/predict", content=body, headers={"content-type": "application/json"})
    _assert_names(response, row=0, field="monthly_charges")
    assert stored_count() == 0


# (case, the whole request body as JSON text, the field the error must name)
BAD_REQUESTS: list[tuple[str, str | bytes, str]] = [
    ("empty list", json.dumps({"source": "webapp", "records": []}), "records"),
    ("bad source", json.dumps({"source": "batch", "records": [customer_record()]}), "source"),
    ("missing source", json.dumps({"records": [customer_record()]}), "source"),
    ("missing records", json.dumps({"source": "webapp"}), "records"),
    ("records not a list", json.dumps({"source": "webapp", "records": customer_record()}), "records"),
    ("unknown request field", json.dumps({"source": "webapp", "records": [customer_record()], "x": 1}), "x"),
    ("NUL in the file name",
     json.dumps({"source": "webapp", "records": [customer_record()], "file_name": "a\x00"}), "file_name"),
    ("NUL in the batch key",
     json.dumps({"source": "webapp", "records": [customer_record()], "batch_key": "\x00"}), "batch_key"),
    ("invalid UTF-8", b'{"source": "webapp", "records": [{"customer_id": "\xff"}]}', "body"),
    ("not JSON", "source=webapp", "body"),
    ("truncated JSON", json.dumps({"source": "webapp", "records": [customer_record()]})[:-5], "body"),
    ("a list, not an object", json.dumps([customer_record()]), "body"),
    ("null", "null", "body"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_is_named_by_field_and_nothing_is_stored(
    api_url: str, clean_db: str, case: str, body: str | bytes, field: str,
) -> None:
    response = httpx.post(f"{api_url}/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    fields = [error["field"] for error in response.json()["detail"]]
    assert field in fields
    assert stored_count() == 0


def test_a_record_that_is_not_an_object_is_named_by_row(api_url: str, clean_db: str) -> None:
    response = httpx.post(f"{api_url}/predict", json={"source": "webapp", "records": [customer_record(), 1]})
    _assert_names(response, row=1, field="record")
    assert stored_count() == 0


def test_more_records_than_the_limit_is_413_and_stores_nothing(
    api_with_env: Callable[[dict[str, str]], str], clean_db: str,
) -> None:
    api = api_with_env({"MAX_RECORDS_PER_REQUEST": "3"})

    too_many = httpx.post(f"{api}/predict", json={"source": "scheduled", "records": [customer_record()] * 4})
    assert too_many.status_code == 413
    assert "limit is 3" in too_many.json()["detail"]
    assert stored_count() == 0
    at_limit = httpx.post(f"{api}/predict", json={"source": "scheduled", "records": [customer_record()] * 3})
    assert at_limit.status_code == 200
    assert stored_count() == 3


def test_an_oversized_body_is_413_before_it_is_read_whole(
    api_with_env: Callable[[dict[str, str]], str], clean_db: str,
) -> None:
    api = api_with_env({"MAX_RECORDS_PER_REQUEST": "2"})
    padded = json.dumps({"source": "webapp", "records": [customer_record()], "file_name": "x" * 20_000})

    response = httpx.post(f"{api}/predict", content=padded, headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert "split the batch" in response.json()["detail"]
    chunked = httpx.post(  # no Content-Length: cut off while streaming
        f"{api}/predict", content=iter([padded[:10_000].encode(), padded[10_000:].encode()]),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413
    assert stored_count() == 0


@pytest.mark.parametrize("params", [
    {"start_date": "2026-13-01", "end_date": "2026-12-31"},
    {"start_date": "2026-01-02", "end_date": "2026-01-01"},
    {"start_date": "2026-01-01"},
    {"start_date": "2026-01-01", "end_date": "2026-01-02", "source": "batch"},
    {"start_date": "2026-01-01", "end_date": "2026-01-02", "limit": 0},
    {"start_date": "2026-01-01", "end_date": "2026-01-02", "offset": -1},
    {"start_date": "2026-01-01", "end_date": "2026-01-02", "timezone": "Mars/Olympus"},
], ids=["bad date", "start after end", "missing end", "bad source", "zero limit", "negative offset",
        "unknown zone"])
def test_bad_history_query_is_422_naming_the_parameter(api_url: str, params: dict[str, Any]) -> None:
    response = httpx.get(f"{api_url}/past-predictions", params=params)
    assert response.status_code == 422, response.text
    fields = {error["field"] for error in response.json()["detail"]}
    named = {"2026-13-01": "start_date", "batch": "source", 0: "limit", -1: "offset",
             "Mars/Olympus": "timezone"}
    expected = next((named[v] for v in params.values() if v in named), None)
    if "end_date" not in params:
        expected = "end_date"
    elif params["start_date"] > params["end_date"]:
        expected = "start_date"
    assert expected in fields


def test_a_large_batch_names_each_inconsistent_row_as_a_small_one_does(api_url: str, clean_db: str) -> None:
    """Above 32 records the cross-field rule screens columns at once (api/routers/predictions.py):
    the same rows, the same messages as record by record, and a first-month customer (tenure 0,
    no total charges) or a zero monthly charge is no problem either way."""
    inconsistent = {
        3: customer_record(tenure=60, monthly_charges=100.0, total_charges=10.0),
        17: customer_record(tenure=34, total_charges=None),
        39: customer_record(tenure=12, monthly_charges=50.0, total_charges=59.99),
    }
    fine = [customer_record(tenure=0, total_charges=None), customer_record(tenure=5, monthly_charges=0.0)]
    records = [inconsistent.get(row, fine[row % 2]) for row in range(40)]
    one_by_one = {
        row: httpx.post(f"{api_url}/predict", json={"source": "webapp", "records": [record]}).json()["detail"]
        for row, record in inconsistent.items()
    }

    response = httpx.post(f"{api_url}/predict", json={"source": "webapp", "records": records})

    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {**problem, "row": row} for row, problems in one_by_one.items() for problem in problems
    ]
    assert stored_count() == 0
