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

import numpy as np

from core.cells import check_value

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
        """Return why `value` (a JSON value: a record's field) breaks the contract, or None.

        The value's JSON type is checked here; its constraints (missing, allowed values, range)
        by `core.cells.check_value`, the rule the typed reading of file cells applies too.
        """
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
        return check_value(value, self.json_property())

    def json_property(self) -> dict[str, Any]:
        """The feature as a JSON schema property (type, enum, minimum, maximum): what the API
        publishes and every reader of cells types and checks by."""
        json_type = {"str": "string", "int": "integer", "float": "number"}[self.dtype]
        prop: dict[str, Any] = {
            "type": [json_type, "null"] if self.nullable else json_type,
            "description": self.description,
            "default": self.default,
            "x-group": self.group,
        }
        if self.allowed is not None:
            prop["enum"] = list(self.allowed)
        if self.minimum is not None:
            prop["minimum"] = self.minimum
        if self.maximum is not None:
            prop["maximum"] = self.maximum
        return prop


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

# Cross-field rules. (1) What a customer has paid so far cannot be far below what the current
# plan costs over the tenure. The real data never goes below 0.68 x (see tests/data); a ratio
# under 0.25 means one of the three values is wrong. (2) Total charges may be empty only in the
# first month (tenure 0, nothing billed yet): the 11 blank totals of the IBM data all have
# tenure 0, and every tenure-0 customer there has a blank total. An empty total with a longer
# tenure is a lost value, which would also drop the customer from the drift of total_charges.
MIN_TOTAL_TO_EXPECTED_RATIO = 0.25
FIRST_MONTH_TENURE = 0
CONSISTENCY_COLUMNS: tuple[str, ...] = ("tenure", "monthly_charges", "total_charges")
"""The columns `check_consistency` reads: a row is checked only when each of them is valid."""


def check_consistency(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Cross-field checks on a record whose single values are valid: (column, reason) pairs.

    Used by the API (422), the ingestion validation (INCONSISTENT_VALUES) and, through the API,
    the webapp and the prediction job. See the comment above for the two rules and their source.
    """
    problems: list[tuple[str, str]] = []
    total, monthly, tenure = (
        record.get("total_charges"), record.get("monthly_charges"), record.get("tenure"),
    )
    if (total is None or _is_nan(total)) and tenure is not None and tenure > FIRST_MONTH_TENURE:
        problems.append((
            "total_charges",
            f"total charges empty for a customer with a tenure of {tenure:g} months "
            f"(only a first-month customer, tenure {FIRST_MONTH_TENURE}, may have none)",
        ))
    elif total is not None and monthly and tenure and not _is_nan(total):
        expected = monthly * tenure
        if total < MIN_TOTAL_TO_EXPECTED_RATIO * expected:
            problems.append((
                "total_charges",
                f"total charges {total:g} far below monthly charges x tenure ({expected:g})",
            ))
    return problems


def inconsistent_rows(tenure: np.ndarray, monthly: np.ndarray, total: np.ndarray) -> np.ndarray:
    """`check_consistency` on columns at once: which rows break a cross-field rule.

    Args:
        tenure, monthly, total: float arrays of one length (NaN: empty), rows whose single values
            are valid (the rules' column is total_charges for both).
    Returns:
        a boolean array, True where `check_consistency` would name total_charges.
    """
    with np.errstate(invalid="ignore"):
        empty_total = np.isnan(total) & ~np.isnan(tenure) & (tenure > FIRST_MONTH_TENURE)
        comparable = (
            ~np.isnan(total) & ~np.isnan(monthly) & (monthly != 0) & ~np.isnan(tenure) & (tenure != 0)
        )
        far_below = comparable & (total < MIN_TOTAL_TO_EXPECTED_RATIO * monthly * tenure)
    return np.asarray(empty_total | far_below, dtype=bool)


@dataclass(frozen=True)
class FileShape:
    """A known export of customer files: its column names and value codings, as aliases.

    `columns` maps the export's header names (as it spells them; compared after the reader's
    normalisation, see `core.reader.normalise_column_name`) to the contract's names; `values`
    maps a contract column to {the export's text: the contract's text}. A file is read in this
    shape when its header holds a name only this export uses (`customerID`, `gender`, ...).
    """

    name: str
    columns: Mapping[str, str]
    values: Mapping[str, Mapping[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "columns": dict(self.columns),
            "values": {column: dict(coding) for column, coding in self.values.items()},
        }


_YES_NO_FLAG = {"Yes": "1", "No": "0"}
IBM_TELCO_EXPORT = FileShape(
    # the public IBM sample "Telco customer churn" (WA_Fn-UseC_-Telco-Customer-Churn.csv) as
    # downloaded: the dataset behind data/telco_churn.csv, with its own names and codings
    name="the public IBM Telco churn export",
    columns={
        "customerID": IDENTIFIER, "gender": "female", "SeniorCitizen": "senior_citizen",
        "Partner": "partner", "Dependents": "dependents", "tenure": "tenure",
        "PhoneService": "phone_service", "MultipleLines": "multiple_lines",
        "InternetService": "internet_service", "OnlineSecurity": "online_security",
        "OnlineBackup": "online_backup", "DeviceProtection": "device_protection",
        "TechSupport": "tech_support", "StreamingTV": "streaming_tv",
        "StreamingMovies": "streaming_movies", "Contract": "contract",
        "PaperlessBilling": "paperless_billing", "PaymentMethod": "payment_method",
        "MonthlyCharges": "monthly_charges", "TotalCharges": "total_charges", "Churn": TARGET,
    },
    # SeniorCitizen is 0/1 there too; the categories (MultipleLines "No phone service",
    # InternetService "Fiber optic", "No internet service", "Bank transfer (automatic)", ...)
    # are spelled as in the contract. TotalCharges holds a single space for first-month
    # customers: the reader reads white space as empty.
    values={
        "female": {"Female": "1", "Male": "0"},
        "partner": _YES_NO_FLAG, "dependents": _YES_NO_FLAG,
        "phone_service": _YES_NO_FLAG, "paperless_billing": _YES_NO_FLAG,
    },
)
FILE_SHAPES: tuple[FileShape, ...] = (IBM_TELCO_EXPORT,)


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
    properties: dict[str, Any] = {f.name: f.json_property() for f in FEATURES}
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
        # for readers of customer files (core/reader.py): columns a file may carry besides the
        # record's, and the known exports whose names and codings are aliases of the contract's
        "x-extra-columns": [TARGET],
        "x-file-shapes": [shape.to_json() for shape in FILE_SHAPES],
    }


def default_record() -> dict[str, Any]:
    """A valid record made of the form defaults."""
    return {f.name: f.default for f in FEATURES}


def canary_records() -> list[dict[str, Any]]:
    """Five fixed, valid customers every model version must score (model/admission.py).

    Chosen to cover the encoders' branches: the form defaults; a first-month fiber customer on a
    monthly contract with no total yet (the nullable feature empty); a long-standing two-year DSL
    customer; a customer with no internet service (every add-on "No internet service") and one
    with no phone service. Training records their scores in the model's metadata; a version is
    served only when it scores them again to the same probabilities.
    """
    high_risk = {
        "senior_citizen": 1, "tenure": 0, "internet_service": "Fiber optic", "contract": "Month-to-month",
        "payment_method": "Electronic check", "monthly_charges": 99.5, "total_charges": None,
        "online_security": "No", "tech_support": "No", "streaming_tv": "Yes", "multiple_lines": "Yes",
    }
    loyal = {
        "female": 1, "partner": 1, "dependents": 1, "tenure": 70, "internet_service": "DSL",
        "contract": "Two year", "payment_method": "Credit card (automatic)", "monthly_charges": 55.2,
        "total_charges": 3864.0, "online_security": "Yes", "online_backup": "Yes", "tech_support": "Yes",
        "paperless_billing": 0,
    }
    no_internet = {
        "tenure": 30, "internet_service": "No", "contract": "One year", "payment_method": "Mailed check",
        "monthly_charges": 20.05, "total_charges": 601.5,
        **{name: NO_INTERNET for name in ("online_security", "online_backup", "device_protection",
                                          "tech_support", "streaming_tv", "streaming_movies")},
    }
    no_phone = {"phone_service": 0, "multiple_lines": "No phone service", "tenure": 5,
                "monthly_charges": 29.85, "total_charges": 150.3}
    return [{**default_record(), **changes} for changes in ({}, high_risk, loyal, no_internet, no_phone)]
