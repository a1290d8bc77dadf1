"""The CSV check, against the record schema the API publishes (model.contract.record_json_schema)."""

from __future__ import annotations

import csv
import io

import pytest

from model.contract import FEATURE_NAMES, default_record, record_json_schema
from webapp.csv_check import LABEL_COLUMN, RowError, check_csv, parse_value

SCHEMA = record_json_schema()


def csv_bytes(rows: list[dict], columns: list[str] | None = None) -> bytes:
    columns = columns or list(rows[0])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def test_valid_rows_become_typed_records() -> None:
    row = {**default_record(), "customer_id": "C1"}
    check = check_csv(csv_bytes([row, row | {"customer_id": "C2"}]), SCHEMA)
    assert check.can_send and not check.row_errors
    assert check.records[0] == row  # "12" -> 12, "70.0" -> 70.0, "1" -> 1: the types the API wants
    assert isinstance(check.records[0]["tenure"], int)
    assert check.record_rows == [2, 3]  # the header is row 1


def test_the_same_customer_twice_is_a_duplicate_and_the_first_stays_valid() -> None:
    row = {**default_record(), "customer_id": "C1"}
    check = check_csv(csv_bytes([row, row]), SCHEMA)
    assert check.record_rows == [2]
    assert check.row_errors == [RowError(3, "customer_id", "the same customer as row 2")]


def test_invalid_rows_are_named_by_file_row_and_the_rest_goes_on() -> None:
    good = default_record()
    rows = [
        good, {**good, "tenure": -5}, good, {**good, "contract": "Weekly"},
        {**good, "monthly_charges": "abc"},
    ]
    check = check_csv(csv_bytes(rows), SCHEMA)
    assert check.record_rows == [2, 4]
    assert [(e.row, e.column) for e in check.row_errors] == [
        (3, "tenure"), (5, "contract"), (6, "monthly_charges"),
    ]
    assert "below the minimum 0" in check.row_errors[0].reason
    assert "'Weekly' is not one of" in check.row_errors[1].reason
    assert "expected a number, got 'abc'" in check.row_errors[2].reason
    assert check.invalid_rows == [3, 5, 6] and check.can_send


def test_missing_required_columns_are_named_and_nothing_is_kept() -> None:
    columns = [name for name in FEATURE_NAMES if name not in ("tenure", "contract")]
    rows = [{k: v for k, v in default_record().items() if k in columns}]
    check = check_csv(csv_bytes(rows, columns), SCHEMA)
    assert check.missing_columns == ["tenure", "contract"]
    assert not check.records and not check.can_send


def test_label_column_is_dropped_and_extra_columns_ignored_with_notes() -> None:
    row = {**default_record(), LABEL_COLUMN: "Yes", "region": "North"}
    check = check_csv(csv_bytes([row]), SCHEMA)
    assert check.dropped_label and check.extra_columns == ["region"]
    assert LABEL_COLUMN not in check.records[0] and "region" not in check.records[0]
    notes = " ".join(check.notes())
    assert "`churn`" in notes and "`region`" in notes


def test_empty_total_charges_is_sent_as_null_but_an_empty_required_value_is_an_error() -> None:
    rows = [{**default_record(), "total_charges": ""}, {**default_record(), "contract": ""}]
    check = check_csv(csv_bytes(rows), SCHEMA)
    assert check.records[0]["total_charges"] is None
    assert [(e.row, e.column, e.reason) for e in check.row_errors] == [(3, "contract", "missing value")]


def test_an_empty_customer_id_is_left_out() -> None:
    check = check_csv(csv_bytes([{**default_record(), "customer_id": ""}]), SCHEMA)
    assert "customer_id" not in check.records[0]


def test_a_row_with_the_wrong_number_of_values_is_named() -> None:
    content = csv_bytes([default_record()]) + b"1,2,3\n"
    check = check_csv(content, SCHEMA)
    assert check.row_errors == [RowError(3, "", "row 3 has 3 fields, the header 19")]
    assert check.record_rows == [2]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "The file has no bytes."),
        (b"\x00\x01\x02binary", "The file holds a NUL byte at byte 0: binary content"),
        (b"PK\x03\x04" + b"\x00" * 30, "The file is a zip archive, not a CSV file"),
        (b"<!DOCTYPE html><html><body>customers</body></html>", "The file is an HTML page"),
    ],
)
def test_unreadable_files_get_a_file_error(content: bytes, reason: str) -> None:
    check = check_csv(content, SCHEMA)
    assert check.file_error and check.file_error.startswith(reason) and not check.can_send


def test_header_only_file_says_there_are_no_rows() -> None:
    check = check_csv(",".join(FEATURE_NAMES).encode() + b"\n", SCHEMA)
    assert check.file_error == "The file has a header but no rows."


def test_a_spreadsheet_bom_is_ignored() -> None:
    check = check_csv(b"\xef\xbb\xbf" + csv_bytes([default_record()]), SCHEMA)
    assert check.can_send and not check.missing_columns


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("tenure", "12.0", (12, None)),
        ("tenure", "12.5", (None, "expected an integer, got '12.5'")),
        ("monthly_charges", "nan", (None, "expected a finite number, got 'nan'")),
        ("monthly_charges", "250", (None, "250.0 is above the maximum 200")),
        ("female", "2", (None, "2 is not one of [0, 1]")),
    ],
)
def test_parse_value(name: str, text: str, expected: tuple) -> None:
    assert parse_value(text, SCHEMA["properties"][name]) == expected
