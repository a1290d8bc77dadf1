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
    low = default_record() | {"tenure": 24, "monthly_charges": 100.0, "total_charges": 10.0}
    assert [c for c, _ in check_record(low)] == ["total_charges"]


def test_empty_total_charges_only_in_the_first_month() -> None:
    # the IBM data: every blank TotalCharges has tenure 0 (tests/data checks the dataset too)
    assert check_record(default_record() | {"tenure": 0, "total_charges": None}) == []
    assert check_record(default_record() | {"tenure": 1, "total_charges": None}) == [(
        "total_charges",
        "total charges empty for a customer with a tenure of 1 months "
        "(only a first-month customer, tenure 0, may have none)",
    )]
    assert [c for c, _ in check_record(default_record() | {"tenure": 60, "total_charges": None})] == [
        "total_charges"
    ]


def test_the_ibm_export_names_and_codings_are_aliases() -> None:
    shape = contract.IBM_TELCO_EXPORT
    assert set(shape.columns.values()) == {*contract.FEATURE_NAMES, contract.IDENTIFIER, contract.TARGET}
    assert shape.columns["customerID"] == contract.IDENTIFIER
    assert shape.columns["gender"] == "female" and shape.values["female"] == {"Female": "1", "Male": "0"}
    # every coded value lands in the feature's allowed set
    for column, coding in shape.values.items():
        assert {int(v) for v in coding.values()} <= set(FEATURES_BY_NAME[column].allowed)
    schema = contract.record_json_schema()
    assert schema["x-file-shapes"] == [shape.to_json()]
    assert schema["x-extra-columns"] == [contract.TARGET]


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
