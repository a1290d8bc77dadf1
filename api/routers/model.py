"""GET /model: what is being served, how good it was on the holdout, and the record schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.deps import ServedModelsDep
from api.schemas import ModelInfo
from api.serving import serving_report
from model.contract import record_json_schema

router = APIRouter(tags=["model"])


@router.get("/model", response_model=ModelInfo)
def describe_model(models: ServedModelsDep, request: Request) -> dict[str, Any]:
    """The served model's version, training metrics and the JSON schema clients build forms from.

    `champion` and `challenger` name the served versions: the registry's version number (None when
    the API serves local artifacts) and the model version stored with predictions. `serving` says
    what /health says: the registry's aliases, whether they agree with what is served, refusals.
    """
    predictor = models.champion
    metadata = predictor.metadata
    challenger = models.challenger
    return {
        "champion": {"registry_version": models.champion_number, "model_version": predictor.version},
        "challenger": None if challenger is None else {
            "registry_version": models.challenger_number, "model_version": challenger.version},
        "model_version": predictor.version,
        "trained_at": metadata["trained_at"],
        "metrics": metadata["metrics"],
        "threshold": predictor.threshold,
        "intercept": predictor.intercept,
        "training_churn_rate": metadata["training_churn_rate"],
        "record_schema": record_json_schema(),
        "serving": serving_report(models, request.app.state.serving),
    }
