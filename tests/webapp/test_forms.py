"""The form spec built from the record schema the API publishes."""

from __future__ import annotations

from model.contract import FEATURES, default_record, record_json_schema
from webapp.forms import build_form_fields, group_fields, humanise, record_from_form

SCHEMA = record_json_schema()


def test_one_field_per_schema_property_with_kind_bounds_and_default() -> None:
    fields = {f.name: f for f in build_form_fields(SCHEMA)}
    assert set(fields) == {f.name for f in FEATURES} | {"customer_id"}
    assert fields["contract"].kind == "choice" and fields["contract"].default == "Month-to-month"
    tenure = fields["tenure"]
    assert tenure.kind == "integer" and (tenure.minimum, tenure.maximum) == (0, 120)
    assert fields["total_charges"].kind == "number" and fields["total_charges"].nullable
    assert fields["customer_id"].kind == "text" and not fields["customer_id"].required
    assert fields["female"].option_label(1) == "Yes"
    assert fields["contract"].option_label("One year") == "One year"


def test_fields_are_grouped_by_x_group_in_first_appearance_order() -> None:
    groups = group_fields(build_form_fields(SCHEMA))
    assert list(groups) == ["Customer", "Account", "Phone", "Internet"]
    assert sum(len(members) for members in groups.values()) == len(FEATURES) + 1


def test_form_defaults_make_the_contract_default_record() -> None:
    fields = build_form_fields(SCHEMA)
    values = {f.name: f.default for f in fields}
    assert record_from_form(fields, values) == default_record()  # empty customer id is not sent


def test_an_empty_nullable_number_is_sent_as_null_and_numbers_are_typed() -> None:
    fields = build_form_fields(SCHEMA)
    defaults = {f.name: f.default for f in fields}
    values = {**defaults, "total_charges": None, "tenure": 3.0, "customer_id": " C7 "}
    record = record_from_form(fields, values)
    assert record["total_charges"] is None
    assert record["tenure"] == 3 and isinstance(record["tenure"], int)
    assert record["customer_id"] == "C7"


def test_humanise() -> None:
    assert humanise("monthly_charges") == "Monthly charges"
