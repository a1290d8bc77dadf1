"""Code tests of the feature contract."""

import math

import pytest

from model import contract
from model.contract import FEATURES, FEATURES_BY_NAME, check_record, default_record


def test_nineteen_features_declared_once() -> None:
    assert len(FEATURES) == 19
    assert len(set(contract.FEATURE_NAMES)) == 19
    assert contract.IDENTIFIER not in contract.FEATURE_NAMES
    assert contract.TARGET not in contract.FEATURE_NAMES


def test_every_feature_has_description_group_and_valid_default() -> None:
    for f in FEATURES:
        assert f.description and f.group
        assert f.check_value(f.default) is None, f.name


def test_default_record_is_valid() -> None:
    assert check_record(default_record()) == []


@pytest.mark.parametrize(
    ("field", "value", "reason_part"),
    [
        ("tenure", -1, "below the minimum"),
        ("monthly_charges", 1187.5, "above the maximum"),
        ("contract", "Three year", "is not one of"),
        ("tenure", "twelve", "expected a number"),
        ("tenure", 1.5, "expected an integer"),
        ("monthly_charges", math.inf, "infinite"),
        ("contract", None, "missing value"),
        ("female", True, "expected a number"),
    ],
)
def test_bad_values_are_named(field: str, value: object, reason_part: str) -> None:
    record = default_record() | {field: value}
    problems = check_record(record)
    assert [name for name, _ in problems] == [field]
    assert reason_part in problems[0][1]


def test_missing_and_unknown_fields() -> None:
    record = default_record()
    del record["contract"]
    record["favourite_colour"] = "blue"
    assert sorted(check_record(record)) == [
        ("contract", "field required"), ("favourite_colour", "unknown field"),
    ]


def test_total_charges_nullable_but_not_inconsistent() -> None:
    assert check_record(default_record() | {"total_charges": None}) == []
    low = default_record() | {"tenure": 24, "monthly_charges": 100.0, "total_charges": 10.0}
    assert [c for c, _ in check_record(low)] == ["total_charges"]


def test_json_schema_follows_contract() -> None:
    schema = contract.record_json_schema()
    assert schema["required"] == list(contract.FEATURE_NAMES)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["contract"]["enum"] == list(FEATURES_BY_NAME["contract"].allowed)
    assert schema["properties"]["tenure"]["minimum"] == 0
    assert schema["properties"]["total_charges"]["type"] == ["number", "null"]


def test_the_consistency_rule_reads_only_its_declared_columns() -> None:
    # ingestion checks a row's consistency only when each of CONSISTENCY_COLUMNS is valid
    inconsistent = default_record() | {"tenure": 60, "monthly_charges": 100.0, "total_charges": 10.0}
    declared_only = {name: inconsistent[name] for name in contract.CONSISTENCY_COLUMNS}
    assert contract.check_consistency(declared_only) == contract.check_consistency(inconsistent) != []
