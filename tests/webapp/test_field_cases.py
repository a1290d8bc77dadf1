"""Every field case (tests/field_cases/) through the webapp's upload check: the correct outcome."""

from __future__ import annotations

import pytest

from model.contract import record_json_schema
from tests.field_case_outcomes import FIELD_CASE_IDS, FIELD_CASES, IBM_SAMPLE, FieldCase
from webapp.csv_check import check_csv

SCHEMA = record_json_schema()


@pytest.mark.parametrize("case", FIELD_CASES, ids=FIELD_CASE_IDS)
def test_field_case_in_the_upload_check(case: FieldCase) -> None:
    check = check_csv(case.path.read_bytes(), SCHEMA, file_name=case.name)
    if case.refused:
        assert check.file_error is not None and check.file_error.startswith(f"The file {case.refused}")
        assert not check.can_send
        return
    assert check.file_error is None and check.missing_columns == [] and check.extra_columns == []
    assert tuple(record.get("customer_id") for record in check.records) == case.valid_ids
    invalid: dict[int, set[str | None]] = {}
    for error in check.row_errors:
        invalid.setdefault(error.row, set()).add(error.column or None)
    assert invalid == {row: set(columns) for row, columns in case.invalid.items()}
    for note in case.notes:
        assert f"{note[:1].upper()}{note[1:]}." in check.notes()


def test_the_ibm_export_is_sent_in_the_contracts_coding() -> None:
    check = check_csv(IBM_SAMPLE.read_bytes(), SCHEMA, file_name=IBM_SAMPLE.name)
    assert len(check.records) == 200 and check.record_rows == list(range(2, 202))
    assert check.dropped_label  # Churn is the label: dropped before predicting
    first = check.records[0]
    assert first == {
        "customer_id": "7590-VHVEG", "female": 1, "senior_citizen": 0, "partner": 1, "dependents": 0,
        "tenure": 1, "phone_service": 0, "multiple_lines": "No phone service", "internet_service": "DSL",
        "online_security": "No", "online_backup": "Yes", "device_protection": "No", "tech_support": "No",
        "streaming_tv": "No", "streaming_movies": "No", "contract": "Month-to-month",
        "paperless_billing": 1, "payment_method": "Electronic check", "monthly_charges": 29.85,
        "total_charges": 29.85,
    }
    first_month = [r for r in check.records if r["total_charges"] is None]
    assert len(first_month) == 11 and {r["tenure"] for r in first_month} == {0}


def test_the_extra_fields_row_is_named_in_the_users_terms() -> None:
    case = next(c for c in FIELD_CASES if c.name == "extra_fields_on_first_row.csv")
    check = check_csv(case.path.read_bytes(), SCHEMA)
    assert [(e.row, e.reason) for e in check.row_errors] == [(2, "row 2 has 21 fields, the header 20")]


def test_semicolon_decimal_commas_are_sent_as_numbers() -> None:
    case = next(c for c in FIELD_CASES if c.name == "semicolon_decimal_comma.csv")
    check = check_csv(case.path.read_bytes(), SCHEMA)
    assert [(r["monthly_charges"], r["total_charges"]) for r in check.records] == [
        (29.85, 29.85), (56.95, 1889.5), (53.85, 108.15),
    ]
