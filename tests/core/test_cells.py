"""The one typed reading of cells (core/cells.py): a column read at once gives what each cell read
alone gives, and every path that types cells (webapp check, validation, prediction job, contract)
reads them by it."""

from __future__ import annotations

import pytest

from core.cells import check_value, read_cell, type_column
from model.contract import FEATURES_BY_NAME, record_json_schema

PROPERTIES = record_json_schema()["properties"]
TRICKY = ["12", " 12 ", "+12", "12.0", "12.5", "1e2", "1_000", "1,5", "$12", "nan", "NaN", "inf",
          "-Infinity", "", "   ", None, "0x10", "١٢", "-3", "abc"]


@pytest.mark.parametrize(
    "column", ["tenure", "monthly_charges", "total_charges", "female", "contract", "customer_id"],
)
def test_a_column_read_at_once_equals_each_cell_read_alone(column: str) -> None:
    prop = PROPERTIES[column]
    typed = type_column(TRICKY, prop)
    for position, text in enumerate(TRICKY):
        alone = read_cell(text, prop)
        value, problem = typed.values[position], typed.problems.get(position)
        together = (None, problem) if problem else (
            (None, check_value(value, prop)) if check_value(value, prop) else (value, None)
        )
        assert together == alone, (column, text)


def test_numbers_are_read_by_one_rule() -> None:
    prop = PROPERTIES["tenure"]
    assert [read_cell(t, prop) for t in ("12", " 12 ", "12.0", "1e1")] == [
        (12, None), (12, None), (12, None), (10, None),
    ]
    assert read_cell("1_000", prop) == (None, "expected an integer, got '1_000'")  # float() took it
    assert read_cell("12.5", prop) == (None, "expected an integer, got '12.5'")
    assert read_cell("inf", PROPERTIES["monthly_charges"]) == (None, "expected a finite number, got 'inf'")
    assert read_cell("", PROPERTIES["total_charges"]) == (None, None)  # nullable
    assert read_cell("", prop) == (None, "missing value")


def test_the_contract_checks_values_by_the_same_constraints() -> None:
    for name in ("tenure", "contract", "female", "monthly_charges"):
        feature = FEATURES_BY_NAME[name]
        for value in (-1, 0, 1, 2, 250, "One year", "Ten years"):
            if isinstance(value, str) != (feature.dtype == "str"):
                continue
            assert feature.check_value(value) == check_value(value, PROPERTIES[name]), (name, value)
