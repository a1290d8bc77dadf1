"""Request and response models, generated from the feature contract (model/contract.py).

A record is a TypedDict rather than a BaseModel: pydantic validates it in Rust and hands back a
plain dict, which the predictor and the bulk write use as is (no per-record model_dump on 10,000
rows). Numbers are strict: "12" is not a number, true is not 1, NaN and infinity are refused.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal, NotRequired, Required

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from db.models import SOURCES
from model.contract import FEATURES, IDENTIFIER, IDENTIFIER_MAX_LENGTH, Feature, default_record

Source = Literal[SOURCES]  # type: ignore[valid-type]
SourceFilter = Literal[(*SOURCES, "all")]  # type: ignore[valid-type]
PYTHON_TYPES: dict[str, type] = {"str": str, "int": int, "float": float}
CUSTOMER_ID_MAX_LENGTH = IDENTIFIER_MAX_LENGTH
# PostgreSQL text cannot hold a NUL character: refused here (422) rather than failing the write
NO_NUL = r"^[^\x00]*$"


def _value_type(feature: Feature) -> Any:
    """The pydantic type of one feature: its set, its range, strict numbers, no NaN/inf."""
    info = Field(description=feature.description, json_schema_extra={"x-group": feature.group})
    if feature.dtype == "str":
        value: Any = Literal[feature.allowed] if feature.allowed else str  # type: ignore[valid-type]
    elif feature.allowed is not None:  # 0/1 flags: Literal[0, 1] would take true and 1.0
        value = Annotated[int, Field(strict=True, ge=min(feature.allowed), le=max(feature.allowed))]
    else:
        value = Annotated[
            PYTHON_TYPES[feature.dtype],
            Field(strict=True, ge=feature.minimum, le=feature.maximum, allow_inf_nan=False),
        ]
    if feature.nullable:
        value = value | None
    return Annotated[value, info]


def _record_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {
        f.name: (Required if f.required else NotRequired)[_value_type(f)] for f in FEATURES
    }
    fields[IDENTIFIER] = NotRequired[
        Annotated[str | None, Field(strict=True, max_length=CUSTOMER_ID_MAX_LENGTH, pattern=NO_NUL)]
    ]
    return fields


CustomerRecord = TypedDict("CustomerRecord", _record_fields())  # type: ignore[misc]
CustomerRecord.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]

# In responses the features were validated on the way in: plain types, nothing re-checked.
FeatureValues = TypedDict(  # type: ignore[misc]
    "FeatureValues",
    {f.name: PYTHON_TYPES[f.dtype] | None if f.nullable else PYTHON_TYPES[f.dtype] for f in FEATURES},
)


@lru_cache(maxsize=8)
def prediction_request_model(max_records: int) -> type[BaseModel]:
    """The POST /predict body; the record limit comes from the settings of the running app.

    Cached: built once per limit (per app, in practice), not once per request.
    """

    class PredictionRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
            {"source": "webapp", "records": [{**default_record(), IDENTIFIER: "C00001"}]},
        ]})

        source: Source
        records: list[CustomerRecord] = Field(min_length=1, max_length=max_records)  # type: ignore[valid-type]
        file_name: str | None = Field(default=None, max_length=512, pattern=NO_NUL)
        batch_key: str | None = Field(
            default=None, max_length=512, pattern=NO_NUL,
            description="Idempotency key: a batch already stored under it is returned, not stored again",
        )

    return PredictionRequest


class ReasonOut(BaseModel):
    """One reason code: a feature's exact contribution to the logit of the churn probability."""

    feature: str
    value: str | int | float | None = Field(description="The feature's value in this record")
    contribution: float = Field(description="Signed, in logit units: positive pushes towards churn")


REASONS_DESCRIPTION = (
    "The three largest contributions to the logit, largest first (empty for predictions stored "
    "before reason codes existed); contributions + rest_contribution + the model's intercept "
    "(GET /model) = logit(churn_probability)"
)


NOT_ECHOED = " Left out of the answer with `?echo=false`."


class PredictionOut(BaseModel):
    id: int
    label: Literal[0, 1] = Field(description="1 = the customer is predicted to churn")
    churn_probability: float
    customer_id: str | None
    reasons: list[ReasonOut] | None = Field(default=None, description=REASONS_DESCRIPTION + NOT_ECHOED)
    rest_contribution: float | None = Field(
        default=None, description="The other features' contributions, summed." + NOT_ECHOED)
    features: FeatureValues | None = Field(  # type: ignore[valid-type]
        default=None, description="The record's features, as stored." + NOT_ECHOED)


class PredictionResponse(BaseModel):
    model_version: str
    replayed: bool = Field(description="True when the batch_key was already stored: nothing was inserted")
    predictions: list[PredictionOut]


class StoredPrediction(BaseModel):
    id: int
    created_at: datetime
    source: Source
    file_name: str | None
    model_version: str
    label: Literal[0, 1]
    churn_probability: float
    customer_id: str | None
    reasons: list[ReasonOut] = Field(description=REASONS_DESCRIPTION)
    rest_contribution: float | None = Field(description="The other features' contributions, summed")
    features: FeatureValues  # type: ignore[valid-type]


class PastPredictions(BaseModel):
    total: int = Field(description="How many predictions match the filters (all pages)")
    limit: int
    offset: int
    items: list[StoredPrediction]


class ServedVersion(BaseModel):
    registry_version: int | None = Field(description="MLflow's version number; null: local artifacts")
    model_version: str = Field(description="The version stored with every prediction it makes")


class ModelInfo(BaseModel):
    champion: ServedVersion = Field(description="Answers every request")
    challenger: ServedVersion | None = Field(description="Scores every request in shadow; never answers")
    model_version: str
    trained_at: datetime
    metrics: dict[str, float]
    threshold: float
    intercept: float = Field(description="The logistic model's intercept (logit units), the base of every "
                             "reason-code decomposition")
    training_churn_rate: float
    record_schema: dict[str, Any]
    serving: ServingReport | None = None


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "down"] = Field(description="The database answers a query")
    model: Literal["ok", "down"] = Field(description="The served champion scores the canary records")


class RegisteredVersionOut(BaseModel):
    registry_version: int | None = Field(description="MLflow's version number; null: not from the registry")
    model_version: str
    run_id: str | None = Field(description="The training run: what identifies a registered version")


class ServedNow(BaseModel):
    champion: RegisteredVersionOut | None
    challenger: RegisteredVersionOut | None
    source: Literal["registry", "cache", "local"] = Field(
        description="registry: followed; cache: the champion last admitted (registry not answered yet); "
                    "local: MODEL_ARTIFACTS_DIR")


class RegistryView(BaseModel):
    enabled: bool = Field(description="False when MLFLOW_TRACKING_URI is unset")
    reachable: bool | None = Field(description="The last poll's outcome; null before the first")
    champion: RegisteredVersionOut | None = Field(description="Where the alias pointed at the last answer")
    challenger: RegisteredVersionOut | None
    last_follow: datetime | None = Field(description="The last poll that read both aliases (UTC)")
    last_error: str | None


class RefusalOut(BaseModel):
    alias: str
    registry_version: int | None
    model_version: str
    run_id: str | None
    reason: str = Field(description="unloadable, metadata, graph_inputs, graph_outputs or canary")
    detail: str
    at: datetime


class ServingReport(BaseModel):
    served: ServedNow | None
    registry: RegistryView
    agrees_with_registry: bool | None = Field(
        description="The served champion and challenger are the registry's (by training run); "
                    "null without a registry or before it first answered")
    refusals: list[RefusalOut] = Field(description="Versions an alias points at that admission refused")


class Health(Readiness):
    serving: ServingReport


class InputError(BaseModel):
    row: int | None = Field(description="Index of the record in `records`; null for request-level fields")
    field: str
    message: str


class InputErrors(BaseModel):
    detail: list[InputError]


class Message(BaseModel):
    detail: str
