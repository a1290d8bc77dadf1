"""The feature contract: the 19 model features, declared once.

Everything that needs to know what a valid customer record is derives it from here: the API's
request schema, the webapp's form and CSV check (through the JSON schema the API publishes), the
Great Expectations suite, the error injector, the training columns, the database columns and the
drift baseline. Adding or changing a feature is one edit here, a migration and a retrain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Dtype = Literal["str", "int", "float"]

IDENTIFIER = "customer_id"
"""Stable customer identifier carried through the system; never a model input."""

IDENTIFIER_MAX_LENGTH = 64
"""Longest customer id the API stores; ingestion refuses longer ones so good rows stay predictable."""

TARGET = "churn"
"""Label column of the dataset ("Yes" / "No"); never sent for prediction."""

POSITIVE_LABEL = "Yes"

YES_NO = ("Yes", "No")
NO_INTERNET = "No internet service"


@dataclass(frozen=True)
class Feature:
    """One model input: its type, its allowed values or range, and how a form shows it."""

    name: str
    dtype: Dtype
    description: str
    default: Any
    group: str
    required: bool = True
    nullable: bool = False
    allowed: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    @property
    def is_categorical(self) -> bool:
        """Categories (strings and 0/1 flags) are one-hot encoded and drift-binned by value."""
        return self.allowed is not None

    @property
    def is_numeric(self) -> bool:
        return self.allowed is None

    def check_value(self, value: Any) -> str | None:
        """Return why `value` breaks the contract, or None when it is valid."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None if self.nullable else "missing value"
        if self.dtype == "str":
            if not isinstance(value, str):
                return f"expected text, got {type(value).__name__}"
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {type(value).__name__}"
        elif self.dtype == "int" and not float(value).is_integer():
            return f"expected an integer, got {value!r}"
        elif math.isinf(value):
            return "infinite value"
        if self.allowed is not None and value not in self.allowed:
            return f"{value!r} is not one of {list(self.allowed)}"
        if self.minimum is not None and value < self.minimum:
            return f"{value!r} is below the minimum {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"{value!r} is above the maximum {self.maximum:g}"
        return None


def _flag(name: str, description: str, default: int, group: str) -> Feature:
    return Feature(name, "int", description, default, group, allowed=(0, 1))


def _choice(name: str, description: str, allowed: tuple[str, ...], group: str) -> Feature:
    return Feature(name, "str", description, allowed[0], group, allowed=allowed)


FEATURES: tuple[Feature, ...] = (
    _flag("female", "1 if the customer is a woman, 0 otherwise", 0, "Customer"),
    _flag("senior_citizen", "1 if the customer is 65 or older", 0, "Customer"),
    _flag("partner", "1 if the customer has a partner", 0, "Customer"),
    _flag("dependents", "1 if the customer has dependents", 0, "Customer"),
    Feature(
        "tenure", "int", "Months the customer has stayed with the company", 12, "Account",
        minimum=0, maximum=120,
    ),
    _flag("phone_service", "1 if the customer has a phone service", 1, "Phone"),
    _choice(
        "multiple_lines", "Whether the customer has several phone lines",
        ("No", "Yes", "No phone service"), "Phone",
    ),
    _choice(
        "internet_service", "The customer's internet service provider",
        ("Fiber optic", "DSL", "No"), "Internet",
    ),
    _choice("online_security", "Online security add-on", (*YES_NO, NO_INTERNET), "Internet"),
    _choice("online_backup", "Online backup add-on", (*YES_NO, NO_INTERNET), "Internet"),
    _choice("device_protection", "Device protection add-on", (*YES_NO, NO_INTERNET), "Internet"),
    _choice("tech_support", "Tech support add-on", (*YES_NO, NO_INTERNET), "Internet"),
    _choice("streaming_tv", "Streaming TV add-on", (*YES_NO, NO_INTERNET), "Internet"),
    _choice("streaming_movies", "Streaming movies add-on", (*YES_NO, NO_INTERNET), "Internet"),
    _choice(
        "contract", "Contract term", ("Month-to-month", "One year", "Two year"), "Account",
    ),
    _flag("paperless_billing", "1 if the customer gets paperless bills", 1, "Account"),
    _choice(
        "payment_method", "How the customer pays",
        (
            "Electronic check", "Mailed check",
            "Bank transfer (automatic)", "Credit card (automatic)",
        ),
        "Account",
    ),
    Feature(
        "monthly_charges", "float", "Amount charged to the customer each month (USD)", 70.0,
        "Account", minimum=0, maximum=200,
    ),
    Feature(
        "total_charges", "float",
        "Total amount charged so far (USD); empty for customers in their first month",
        840.0, "Account", nullable=True, minimum=0, maximum=20_000,
    ),
)

FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}

PREDICTION_SOURCES: tuple[str, ...] = ("webapp", "scheduled")
"""Where a prediction request came from: the web page or the scheduled prediction job."""


@dataclass(frozen=True)
class Segment:
    """A slice of the customers the monitoring also looks at on its own.

    `column` is a feature (or `source`, the prediction's origin); the slice is the rows whose
    value equals `value`, or, for a band of a number, lies in [lower, upper) (upper None: no end).
    """

    dimension: str
    column: str
    value: str | None = None
    lower: float | None = None
    upper: float | None = None

    @property
    def name(self) -> str:
        """The label dashboards show and filter by, e.g. `contract = Two year`, `tenure 0-11 months`."""
        if self.value is not None:
            return f"{self.dimension} = {self.value}"
        upper = f"-{self.upper - 1:g}" if self.upper is not None else "+"
        return f"{self.dimension} {self.lower:g}{upper} months"


TENURE_BANDS: tuple[tuple[float, float | None], ...] = ((0, 12), (12, 24), (24, 48), (48, None))
"""Tenure bands in months: first year, second year, years 3-4, longer (lower bound inclusive)."""



def _allowed(name: str) -> tuple[str, ...]:
    return tuple(str(v) for v in FEATURES_BY_NAME[name].allowed or ())


SEGMENTS: tuple[Segment, ...] = (
    *(Segment("contract", "contract", value=v) for v in _allowed("contract")),
    *(Segment("internet service", "internet_service", value=v) for v in _allowed("internet_service")),
    *(Segment("tenure", "tenure", lower=lo, upper=hi) for lo, hi in TENURE_BANDS),
    *(Segment("source", "source", value=v) for v in PREDICTION_SOURCES),
)
"""The monitored segments (contract type, internet service, tenure band, source), from the contract.
A `source` segment has no training counterpart: its reference is the whole training data."""
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES_BY_NAME)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.is_categorical)
NUMERIC_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.is_numeric)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(f.name for f in FEATURES if f.required)

# Cross-field rule: what a customer has paid so far cannot be far below what the current plan
# costs over the tenure. The real data never goes below 0.68 x (see tests/data); a ratio under
# 0.25 means one of the three values is wrong.
MIN_TOTAL_TO_EXPECTED_RATIO = 0.25
CONSISTENCY_COLUMNS: tuple[str, ...] = ("tenure", "monthly_charges", "total_charges")
"""The columns `check_consistency` reads: a row is checked only when each of them is valid."""


def check_consistency(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Cross-field checks on a record whose single values are valid: (column, reason) pairs."""
    problems: list[tuple[str, str]] = []
    total, monthly, tenure = (
        record.get("total_charges"), record.get("monthly_charges"), record.get("tenure"),
    )
    if total is not None and monthly and tenure and not _is_nan(total):
        expected = monthly * tenure
        if total < MIN_TOTAL_TO_EXPECTED_RATIO * expected:
            problems.append((
                "total_charges",
                f"total charges {total:g} far below monthly charges x tenure ({expected:g})",
            ))
    return problems


def check_record(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """All contract violations of one record as (column, reason); empty when it is valid.

    The optional IDENTIFIER is the only field allowed besides the features.
    """
    problems = [
        (name, "unknown field")
        for name in record
        if name not in FEATURES_BY_NAME and name != IDENTIFIER
    ]
    for feature in FEATURES:
        if feature.name not in record:
            if feature.required:
                problems.append((feature.name, "field required"))
            continue
        reason = feature.check_value(record[feature.name])
        if reason:
            problems.append((feature.name, reason))
    if not problems:
        problems.extend(check_consistency(record))
    return problems


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def record_json_schema() -> dict[str, Any]:
    """JSON Schema of one record, published by the API so clients can build forms from it."""
    properties: dict[str, Any] = {}
    for f in FEATURES:
        json_type = {"str": "string", "int": "integer", "float": "number"}[f.dtype]
        prop: dict[str, Any] = {
            "type": [json_type, "null"] if f.nullable else json_type,
            "description": f.description,
            "default": f.default,
            "x-group": f.group,
        }
        if f.allowed is not None:
            prop["enum"] = list(f.allowed)
        if f.minimum is not None:
            prop["minimum"] = f.minimum
        if f.maximum is not None:
            prop["maximum"] = f.maximum
        properties[f.name] = prop
    properties[IDENTIFIER] = {
        "type": ["string", "null"],
        "description": "Optional customer identifier, stored with the prediction; not a model input",
        "maxLength": IDENTIFIER_MAX_LENGTH,
        "x-group": "Customer",
    }
    return {
        "title": "CustomerRecord",
        "type": "object",
        "properties": properties,
        "required": list(REQUIRED_COLUMNS),
        "additionalProperties": False,
    }


def default_record() -> dict[str, Any]:
    """A valid record made of the form defaults."""
    return {f.name: f.default for f in FEATURES}
