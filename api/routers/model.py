"""GET /model: what is being served, how good it was on the holdout, and the record schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import PredictorDep
from api.schemas import ModelInfo
from model.contract import record_json_schema

router = APIRouter(tags=["model"])


@router.get("/model", response_model=ModelInfo)
def describe_model(predictor: PredictorDep) -> dict[str, Any]:
    """The loaded model's version, training metrics and the JSON schema clients build forms from."""
    metadata = predictor.metadata
    return {
        "model_version": predictor.version,
        "trained_at": metadata["trained_at"],
        "metrics": metadata["metrics"],
        "threshold": predictor.threshold,
        "intercept": predictor.intercept,
        "training_churn_rate": metadata["training_churn_rate"],
        "record_schema": record_json_schema(),
    }
