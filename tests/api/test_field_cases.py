"""The field cases' records at the API: what the readers send is stored, ids and all.

The webapp check and the prediction job turn a file into records (the webapp path is shown
here: `check_csv`); the API is the last judge of the cross-field rule (an empty total charges
only in the first month).
"""

from __future__ import annotations

import httpx

from model.contract import record_json_schema
from tests.api.conftest import stored_rows
from tests.field_case_outcomes import FIELD_CASES, IBM_SAMPLE
from webapp.csv_check import check_csv


def test_the_ibm_export_is_stored_with_its_ids(api_url: str, clean_db: str) -> None:
    check = check_csv(IBM_SAMPLE.read_bytes(), record_json_schema(), file_name=IBM_SAMPLE.name)
    response = httpx.post(f"{api_url}/predict", json={"source": "webapp", "records": check.records,
                                                      "file_name": IBM_SAMPLE.name}, timeout=60)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["customer_id"] for p in predictions] == [r["customer_id"] for r in check.records]
    stored = stored_rows()
    assert len(stored) == 200
    first_month = [row for row in stored if row["total_charges"] is None]
    assert len(first_month) == 11 and {row["tenure"] for row in first_month} == {0}


def test_every_field_case_sends_only_records_the_api_accepts(api_url: str, clean_db: str) -> None:
    sent = 0
    for case in FIELD_CASES:
        check = check_csv(case.path.read_bytes(), record_json_schema(), file_name=case.name)
        if not check.records:
            continue
        response = httpx.post(f"{api_url}/predict", json={"source": "webapp", "records": check.records},
                              timeout=60)
        assert response.status_code == 200, (case.name, response.text)
        sent += len(check.records)
    assert len(stored_rows()) == sent


def test_a_blank_total_charges_with_a_long_tenure_is_refused_naming_it(api_url: str, clean_db: str) -> None:
    case = next(c for c in FIELD_CASES if c.name == "total_charges_blank_space.csv")
    [_, long_tenure, first_month] = check_csv(case.path.read_bytes(), record_json_schema()).records
    assert first_month["total_charges"] is None and first_month["tenure"] == 0
    response = httpx.post(f"{api_url}/predict", json={"source": "webapp", "records": [
        first_month, {**long_tenure, "total_charges": None},
    ]}, timeout=60)
    assert response.status_code == 422
    assert response.json()["detail"] == [{
        "row": 1, "field": "total_charges",
        "message": "total charges empty for a customer with a tenure of 34 months "
                   "(only a first-month customer, tenure 0, may have none)",
    }]
    assert stored_rows() == []
