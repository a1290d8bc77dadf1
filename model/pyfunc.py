"""The registered model as an MLflow pyfunc that decides exactly as the API does.

    mlflow.pyfunc.load_model("models:/churn@champion").predict(frame)  ->  one row per customer:
        churn_probability  float, of churn (0..1), ONNX Runtime as in the API
        label              int, 1 = churn, at the version's own threshold (not 0.5)
        reasons            str, JSON list of the top three {feature, value, contribution}
        rest_contribution  float, the other features' contributions to the logit, summed
        model_version      str, the version stored with the API's predictions

The model's artifact is the same artifacts folder `model.predictor.Predictor` loads in the API
(model.onnx, model.joblib, metadata.json), so the registry's model and the served one are one
model: same graph, same threshold, same reason codes. `mlflow models serve -m models:/churn@champion
--env-manager local` serves the same answers over HTTP (/invocations).
"""

from __future__ import annotations

import json
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from model.contract import FEATURE_NAMES, FEATURES

ARTIFACTS_KEY = "churn_artifacts"
OUTPUT_COLUMNS = ("churn_probability", "label", "reasons", "rest_contribution", "model_version")


def frame_to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame with the contract's feature columns to the records Predictor scores (NaN -> None).

    Raises KeyError naming the missing feature columns.
    """
    missing = [name for name in FEATURE_NAMES if name not in frame.columns]
    if missing:
        raise KeyError(f"the input lacks the contract's feature columns {missing}")
    columns = frame[list(FEATURE_NAMES)].astype(object)
    columns = columns.where(columns.notna(), None)
    records: list[dict[str, Any]] = columns.to_dict("records")
    for record in records:  # numpy scalars to Python numbers: integers stay integers
        for feature in FEATURES:
            value = record[feature.name]
            if value is not None and feature.dtype != "str":
                record[feature.name] = int(value) if feature.dtype == "int" else float(value)
    return records


class ChurnModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined,misc]
    """Loads the artifacts folder once; `predict` returns the API's decision per record."""

    def load_context(self, context: Any) -> None:
        from pathlib import Path

        from model.predictor import Predictor

        self.predictor = Predictor(Path(context.artifacts[ARTIFACTS_KEY]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None,
                ) -> pd.DataFrame:
        """One row per input row: probability, label at the version's threshold, reason codes."""
        records = frame_to_records(pd.DataFrame(model_input))
        return decisions_frame(self.predictor, records)


def decisions_frame(predictor: Any, records: list[dict[str, Any]]) -> pd.DataFrame:
    """What `ChurnModel.predict` returns for `records` scored by `predictor` (model.predictor.Predictor)."""
    answers = predictor.predict(records)
    return pd.DataFrame({
        "churn_probability": np.array([a.probability for a in answers], dtype=np.float64),
        "label": np.array([a.label for a in answers], dtype=np.int64),
        "reasons": [json.dumps([{"feature": r.feature, "value": r.value, "contribution": r.contribution}
                                for r in a.reasons]) for a in answers],
        "rest_contribution": np.array([a.rest_contribution for a in answers], dtype=np.float64),
        "model_version": [predictor.version] * len(answers),
    }, columns=list(OUTPUT_COLUMNS))
