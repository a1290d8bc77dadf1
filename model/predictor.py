"""Load the trained pipeline once and score batches of contract-valid records."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.pipeline import Pipeline

from model.data import records_to_frame
from model.train import ARTIFACTS_DIR, METADATA_FILE, MODEL_FILE


class ModelNotTrainedError(RuntimeError):
    """The artifacts are missing: run `python -m model.train`."""


@dataclass(frozen=True)
class ChurnScore:
    """The model's answer for one record (not a stored prediction: that is db.models.Prediction)."""

    label: int  # 1 = the customer is predicted to churn
    probability: float  # of churn, 0..1


class Predictor:
    """The model artifact, loaded once; `predict` scores any number of records."""

    def __init__(self, artifacts_dir: Path = ARTIFACTS_DIR) -> None:
        model_path, metadata_path = artifacts_dir / MODEL_FILE, artifacts_dir / METADATA_FILE
        if not model_path.exists() or not metadata_path.exists():
            raise ModelNotTrainedError(
                f"no model in {artifacts_dir}: run `python -m model.train` first"
            )
        self.pipeline: Pipeline = joblib.load(model_path)
        self.metadata: dict[str, Any] = json.loads(metadata_path.read_text())
        self.version: str = self.metadata["model_version"]
        self.threshold: float = float(self.metadata["threshold"])

    def predict_proba(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Churn probability of each record, in order."""
        if not records:
            return np.empty(0)
        return self.pipeline.predict_proba(records_to_frame(records))[:, 1]

    def decide(self, probabilities: np.ndarray) -> list[int]:
        """The decision rule: label 1 (churn) where the probability reaches the threshold, else 0.

        The threshold is the one that maximised F1 on out-of-fold training scores
        (model/train.py::best_f1_threshold), stored in the model's metadata.
        """
        return (probabilities >= self.threshold).astype(int).tolist()

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[ChurnScore]:
        """Label and churn probability of each record, in order."""
        probabilities = self.predict_proba(records)
        return [
            ChurnScore(label, probability)
            for label, probability in zip(self.decide(probabilities), probabilities.tolist(), strict=True)
        ]
