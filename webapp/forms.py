"""The single-customer form, built from the record JSON schema the API publishes at GET /model.

Pure functions: the page renders `FormField`s with Streamlit widgets; nothing here knows the
feature names, so a feature added to the contract shows up in the form after a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from core.cells import json_types

FieldKind = Literal["choice", "integer", "number", "text"]
OTHER_GROUP = "Other"
# 0/1 flags read better as words; the value sent stays the number the schema asks for.
FLAG_WORDS = {0: "No", 1: "Yes"}


@dataclass(frozen=True)
class FormField:
    """How one record property is shown and what it may hold."""

    name: str
    label: str
    kind: FieldKind
    group: str
    help: str
    default: Any
    required: bool
    nullable: bool
    options: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def option_label(self, value: Any) -> str:
        """The text shown for one choice: "Yes"/"No" for 0/1 flags, the value otherwise."""
        if set(self.options) == set(FLAG_WORDS) and value in FLAG_WORDS:
            return FLAG_WORDS[value]
        return str(value)


def humanise(name: str) -> str:
    """`monthly_charges` -> `Monthly charges`."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def build_form_field(name: str, prop: Mapping[str, Any], *, required: bool) -> FormField:
    json_type, nullable = json_types(prop)
    if "enum" in prop:
        kind: FieldKind = "choice"
    elif json_type == "integer":
        kind = "integer"
    elif json_type == "number":
        kind = "number"
    else:
        kind = "text"
    options = tuple(prop.get("enum", ()))
    default = prop.get("default")
    if kind == "choice" and default not in options:
        default = options[0] if options else None
    return FormField(
        name=name,
        label=humanise(name),
        kind=kind,
        group=str(prop.get("x-group") or OTHER_GROUP),
        help=str(prop.get("description", "")),
        default=default,
        required=required,
        nullable=nullable,
        options=options,
        minimum=prop.get("minimum"),
        maximum=prop.get("maximum"),
    )


def build_form_fields(schema: Mapping[str, Any]) -> list[FormField]:
    """One field per schema property, in schema order."""
    required = set(schema.get("required", ()))
    return [
        build_form_field(name, prop, required=name in required)
        for name, prop in schema.get("properties", {}).items()
    ]


def group_fields(fields: list[FormField]) -> dict[str, list[FormField]]:
    """Fields by `x-group`, groups in order of first appearance (Customer, Account, ...)."""
    groups: dict[str, list[FormField]] = {}
    for form_field in fields:
        groups.setdefault(form_field.group, []).append(form_field)
    return groups


def record_from_form(fields: list[FormField], values: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON record to send: numbers typed as the schema says, empty optional fields left out.

    An empty nullable feature (total charges of a new customer) is sent as null; an empty optional
    text (the customer id) is not sent at all.
    """
    record: dict[str, Any] = {}
    for form_field in fields:
        value = values.get(form_field.name)
        if isinstance(value, str):
            value = value.strip() or None
        if value is None:
            if form_field.required or (form_field.nullable and form_field.kind != "text"):
                record[form_field.name] = None
            continue
        if form_field.kind == "integer":
            value = int(value)
        elif form_field.kind == "number":
            value = float(value)
        record[form_field.name] = value
    return record
