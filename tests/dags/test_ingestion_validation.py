"""Validation of raw customer files: each error type found with its type, column and rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.error_types import ErrorType
from jobs.validation import (
    SUITE_NAME,
    Criticality,
    ValidationOutcome,
    expectations_from_contract,
    validate_customer_file,
    validate_customer_frame,
)
from model.contract import FEATURES, IDENTIFIER
from scripts.inject_errors import FILE_LEVEL, INJECTORS, inject_into_content
from tests.dags.ingestion_samples import write_csv
from tests.factories import dataset_rows


def _validate(frame: pd.DataFrame) -> ValidationOutcome:
    return validate_customer_frame(frame, file_name="sample.csv")


def test_clean_file_is_valid_with_criticality_none(tmp_path: Path) -> None:
    outcome = validate_customer_file(write_csv(dataset_rows(60), tmp_path, "clean.csv"))
    assert (outcome.rows, outcome.valid_rows, outcome.invalid_rows) == (60, 60, 0)
    assert outcome.error_counts == {}
    assert outcome.criticality == Criticality.NONE
    assert outcome.outcome == "good"


def test_blank_total_charges_is_allowed_in_the_first_month_only() -> None:
    frame = dataset_rows(20)
    frame.loc[2, ["tenure", "total_charges"]] = ["0", None]
    frame.loc[5, "total_charges"] = None  # tenure 8: a lost value, not a first month
    assert frame.loc[5, "tenure"] != "0"
    assert _validate(frame).row_errors == {5: [(ErrorType.INCONSISTENT_VALUES, "total_charges")]}


def test_a_feature_arriving_empty_in_every_row_is_caught_not_silently_dropped() -> None:
    # total_charges is the one nullable feature: empty everywhere would vanish from its drift
    frame = dataset_rows(20)
    frame["total_charges"] = None
    outcome = _validate(frame)
    billed = int((frame["tenure"] != "0").sum())
    assert outcome.error_counts == {(ErrorType.INCONSISTENT_VALUES, "total_charges"): billed}
    assert outcome.criticality == Criticality.HIGH


@pytest.mark.parametrize(
    ("column", "bad_value", "error_type"),
    [
        ("tenure", None, ErrorType.MISSING_VALUE),
        ("contract", None, ErrorType.MISSING_VALUE),
        ("contract", "Weekly", ErrorType.UNKNOWN_CATEGORY),
        ("female", "2", ErrorType.UNKNOWN_CATEGORY),
        ("tenure", "-3", ErrorType.OUT_OF_RANGE),
        ("monthly_charges", "1185.0", ErrorType.OUT_OF_RANGE),
        ("monthly_charges", "seventy", ErrorType.WRONG_TYPE),
        ("tenure", "12.5", ErrorType.WRONG_TYPE),
        ("partner", "1.5", ErrorType.WRONG_TYPE),
        ("total_charges", "inf", ErrorType.WRONG_TYPE),
        # longer than the API stores: a good row the API refuses would block its file for ever
        (IDENTIFIER, "C" * 65, ErrorType.OUT_OF_RANGE),
    ],
)
def test_each_value_error_names_its_type_column_and_row(
    column: str, bad_value: str | None, error_type: ErrorType,
) -> None:
    frame = dataset_rows(30)
    frame.loc[[4, 17], column] = bad_value
    outcome = _validate(frame)
    assert outcome.row_errors == {4: [(error_type, column)], 17: [(error_type, column)]}
    assert outcome.error_counts == {(error_type, column): 2}
    assert outcome.outcome == "mixed"


def test_a_missing_required_column_makes_every_row_invalid_and_the_file_high() -> None:
    frame = dataset_rows(25).drop(columns=["payment_method"])
    outcome = _validate(frame)
    assert outcome.invalid_rows == 25
    reason = (ErrorType.MISSING_COLUMN, "payment_method")
    assert all(reasons == [reason] for reasons in outcome.row_errors.values())
    assert outcome.error_counts == {(ErrorType.MISSING_COLUMN, "payment_method"): 25}
    assert outcome.criticality == Criticality.HIGH
    assert outcome.outcome == "bad"


def test_an_unexpected_column_is_reported_but_spoils_no_row() -> None:
    frame = dataset_rows(20)
    frame["loyalty_points"] = "12"
    outcome = _validate(frame)
    assert outcome.invalid_rows == 0
    assert outcome.file_errors == [(ErrorType.UNEXPECTED_COLUMN, "loyalty_points")]
    assert outcome.error_counts == {(ErrorType.UNEXPECTED_COLUMN, "loyalty_points"): 20}
    assert outcome.criticality == Criticality.LOW


def test_a_repeated_customer_is_a_duplicate_and_the_first_one_stays_valid() -> None:
    frame = dataset_rows(20)
    frame = pd.concat([frame, frame.iloc[[3]]], ignore_index=True)
    outcome = _validate(frame)
    assert outcome.row_errors == {20: [(ErrorType.DUPLICATE_ROW, IDENTIFIER)]}


def test_total_charges_far_below_monthly_times_tenure_is_inconsistent() -> None:
    frame = dataset_rows(20)
    row = frame.index[frame["tenure"].astype(int) > 10][0]
    frame.loc[row, "total_charges"] = "1.0"
    outcome = _validate(frame)
    assert outcome.row_errors == {row: [(ErrorType.INCONSISTENT_VALUES, "total_charges")]}


def test_one_reason_per_cell_and_several_reasons_per_row() -> None:
    frame = dataset_rows(10)
    frame.loc[1, "tenure"] = "abc"  # wrong type, not also missing after coercion
    frame.loc[1, "contract"] = "Weekly"
    outcome = _validate(frame)
    assert sorted(outcome.row_errors[1]) == sorted([
        (ErrorType.WRONG_TYPE, "tenure"), (ErrorType.UNKNOWN_CATEGORY, "contract"),
    ])
    assert outcome.invalid_rows == 1


@pytest.mark.parametrize(
    ("invalid", "expected"),
    [(0, Criticality.NONE), (1, Criticality.LOW), (3, Criticality.MEDIUM), (10, Criticality.HIGH)],
)
def test_criticality_follows_the_share_of_invalid_rows(invalid: int, expected: Criticality) -> None:
    frame = dataset_rows(20)
    frame.loc[list(range(invalid)), "tenure"] = "-1"
    assert _validate(frame).criticality == expected


@pytest.mark.parametrize(
    ("content", "error_type"),
    [
        (b"", ErrorType.EMPTY_FILE),
        (b"\n\n", ErrorType.EMPTY_FILE),
        (",".join(f.name for f in FEATURES).encode() + b"\n", ErrorType.EMPTY_FILE),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ErrorType.UNREADABLE_FILE),
        ("customer_id,tenure\nC1,3\n".encode("utf-16-le"), ErrorType.UNREADABLE_FILE),
        (b"customer_id,tenure\nC1,3\n" + b"C2,4\n" * 20_000 + b"C3,\x005\n", ErrorType.UNREADABLE_FILE),
        (b"customer_id,tenure,tenure\nC1,3,4\n", ErrorType.UNREADABLE_FILE),
        (b"<html><body><table><tr><td>customer_id</td></tr></table></body></html>",
         ErrorType.UNREADABLE_FILE),
        (b"loyalty,points\nC1,3\n", ErrorType.UNREADABLE_FILE),
    ],
    ids=["no-bytes", "blank-lines", "header-only", "binary", "utf-16-without-bom", "nul-after-64k",
         "duplicate-column", "html", "no-contract-column"],
)
def test_file_level_problems_make_the_whole_file_bad_and_high(
    tmp_path: Path, content: bytes, error_type: ErrorType,
) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    outcome = validate_customer_file(path)
    assert not outcome.readable
    assert outcome.file_errors == [(error_type, None)]
    assert outcome.error_counts == {(error_type, None): 1}
    assert outcome.criticality == Criticality.HIGH
    assert outcome.outcome == "unreadable"
    assert outcome.detail


def test_a_semicolon_separated_file_is_read_and_its_delimiter_named(tmp_path: Path) -> None:
    path = tmp_path / "semicolons.csv"
    dataset_rows(10).to_csv(path, index=False, sep=";")
    outcome = validate_customer_file(path)
    assert outcome.readable and outcome.invalid_rows == 0
    assert outcome.detail == "the file uses `;` as the delimiter"


def test_the_suite_is_generated_from_the_contract_with_not_null_beside_every_value_check() -> None:
    table_check, *column_checks = expectations_from_contract()
    assert table_check.expectation_type == "expect_table_columns_to_match_set"
    assert set(table_check.column_set) == {f.name for f in FEATURES if f.required}
    by_column: dict[str, set[str]] = {}
    for expectation in column_checks:
        by_column.setdefault(expectation.column, set()).add(expectation.expectation_type)
    assert set(by_column) == {f.name for f in FEATURES}
    for feature in FEATURES:
        checks = by_column[feature.name]
        assert {"expect_column_values_to_be_in_set", "expect_column_values_to_be_between"} & checks
        assert ("expect_column_values_to_not_be_null" in checks) == (not feature.nullable)


def test_great_expectations_result_is_kept_for_data_docs_and_survives_json() -> None:
    frame = dataset_rows(15)
    frame.loc[2, "tenure"] = "-1"
    frame.loc[3, "monthly_charges"] = None
    frame.loc[4, "total_charges"] = "-inf"
    outcome = _validate(frame)
    json.dumps(outcome.to_dict(), allow_nan=False)  # Airflow's XCom takes strict JSON only
    assert outcome.ge_result is not None
    assert outcome.ge_result["suite_name"] == SUITE_NAME
    assert outcome.ge_result["success"] is False
    assert len(outcome.ge_result["results"]) == len(expectations_from_contract())
    again = ValidationOutcome.from_dict(outcome.to_dict())
    assert again == outcome


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("error_type", list(INJECTORS), ids=[str(t) for t in INJECTORS])
def test_every_injector_error_is_found_with_its_type_column_and_rows(
    tmp_path: Path, error_type: ErrorType, seed: int,
) -> None:
    clean = write_csv(dataset_rows(60, start=seed * 100), tmp_path, "clean.csv").read_bytes()
    content, injection = inject_into_content(clean, error_type, np.random.default_rng(seed), 0.15)
    path = tmp_path / "injected.csv"
    path.write_bytes(content)
    outcome = validate_customer_file(path)
    found = {(row, column): t for row, reasons in outcome.row_errors.items() for t, column in reasons}
    if error_type in FILE_LEVEL:
        assert outcome.file_errors == [(error_type, None)], injection.detail
        assert outcome.criticality == Criticality.HIGH
    elif error_type == ErrorType.MISSING_COLUMN:
        [column] = injection.columns
        assert outcome.error_counts == {(error_type, column): 60}
        assert outcome.criticality == Criticality.HIGH
    elif error_type == ErrorType.UNEXPECTED_COLUMN:
        [column] = injection.columns
        assert outcome.file_errors == [(error_type, column)]
        assert found == {}
    elif error_type == ErrorType.MALFORMED_ROW:
        assert found == {(row, None): error_type for row in injection.rows}, injection.describe()
    elif error_type == ErrorType.DUPLICATE_ROW:
        assert found == {(row, IDENTIFIER): error_type for row in injection.rows}
    else:
        assert injection.cells, injection.detail
        assert found == {cell: error_type for cell in injection.cells}, injection.describe()
