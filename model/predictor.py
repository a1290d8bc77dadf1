"""Load the trained model once; score batches of contract-valid records with ONNX Runtime.

The decision rule lives here: a record is labelled churn (1) when its probability is at least
the model's threshold (chosen for F1 on training folds, `metadata.json`). Each scored record
also gets its reason codes (`model/reasons.py`): the top three feature contributions to the
logit, exact for the logistic model.

Scoring runs the ONNX graph exported at training (`model.onnx`, checked against scikit-learn
within 1e-5 on the holdout before it was written): one InferenceSession per Predictor (one per
process), inputs built column-wise. The scikit-learn pipeline is still loaded: its coefficients
give the reason weights, and `sklearn_predict_proba` is the reference the benches compare with.
"""

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
from model.files import ARTIFACTS_DIR, METADATA_FILE, MODEL_FILE
from model.onnx_export import (
    ONNX_FILE,
    PROBABILITIES_OUTPUT,
    TRANSFORMED_OUTPUT,
    inference_session,
    records_to_feeds,
)
from model.reasons import Reasons, contributions, reason_weights, top_reasons

ONNX_THREADS = 1  # intra-op threads; bench/bench_predictor.py measures 1 against 2


class ModelNotTrainedError(RuntimeError):
    """The artifacts are missing: run `python -m model.train`."""


@dataclass(frozen=True)
class Reason:
    """One feature's contribution to a prediction's logit (positive = towards churn)."""

    feature: str
    value: Any
    contribution: float


@dataclass(frozen=True)
class ChurnScore:
    """The model's answer for one record (not a stored prediction: that is db.models.Prediction)."""

    label: int  # 1 = the customer is predicted to churn
    probability: float  # of churn, 0..1
    reasons: tuple[Reason, ...] = ()  # the top contributions, largest |contribution| first
    rest_contribution: float = 0.0  # the other features' contributions summed (logit units)


@dataclass(frozen=True)
class Scores:
    """A batch scored: probabilities (rows,) float64, labels (rows,) int64 (1 = churn), and the
    reason codes (None when not asked for)."""

    probabilities: np.ndarray
    labels: np.ndarray
    reasons: Reasons | None


class Predictor:
    """The model artifacts, loaded once; `score` scores any number of records.

    Raises ModelNotTrainedError when an artifact is missing. Safe to share between threads:
    ONNX Runtime's `run` is thread-safe and nothing here is mutated after loading.
    """

    def __init__(self, artifacts_dir: Path = ARTIFACTS_DIR, threads: int = ONNX_THREADS) -> None:
        paths = [artifacts_dir / name for name in (MODEL_FILE, METADATA_FILE, ONNX_FILE)]
        missing = [path.name for path in paths if not path.exists()]
        if missing:
            raise ModelNotTrainedError(
                f"no model in {artifacts_dir} ({', '.join(missing)} missing): "
                "run `python -m model.train` first"
            )
        self.pipeline: Pipeline = joblib.load(paths[0])
        self.metadata: dict[str, Any] = json.loads(paths[1].read_text())
        self.version: str = self.metadata["model_version"]
        self.threshold: float = float(self.metadata["threshold"])
        self.session = inference_session(paths[2], threads=threads)
        self.reason_weights = reason_weights(self.pipeline)
        self.intercept: float = self.reason_weights.intercept

    def decide(self, probabilities: np.ndarray) -> list[int]:
        """The decision rule: label 1 (churn) where the probability reaches the threshold, else 0.

        The threshold is the one that maximised F1 on out-of-fold training scores
        (model/train.py::best_f1_threshold), stored in the model's metadata.
        """
        return self._labels(probabilities).tolist()

    def _labels(self, probabilities: np.ndarray) -> np.ndarray:
        """`decide` as an int64 array (rows,), for a batch kept in numpy."""
        return (probabilities >= self.threshold).astype(np.int64)

    def score(self, records: Sequence[Mapping[str, Any]], reasons: bool = True) -> Scores:
        """Probabilities, labels and (with `reasons`) reason codes of the records, in order."""
        if not records:
            empty = np.empty(0)
            none = Reasons(np.empty((0, 3), np.int64), np.empty((0, 3)), empty) if reasons else None
            return Scores(empty, np.empty(0, np.int64), none)
        outputs = [PROBABILITIES_OUTPUT, TRANSFORMED_OUTPUT] if reasons else [PROBABILITIES_OUTPUT]
        results = self.session.run(outputs, records_to_feeds(records))
        probabilities = results[0][:, 1].astype(np.float64)
        found = top_reasons(contributions(results[1], self.reason_weights)) if reasons else None
        return Scores(probabilities, self._labels(probabilities), found)

    def predict_proba(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Churn probability of each record, in order (ONNX Runtime)."""
        return self.score(records, reasons=False).probabilities

    def sklearn_predict_proba(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The same through the scikit-learn pipeline: the reference, ~1e-7 away, much slower."""
        if not records:
            return np.empty(0)
        return self.pipeline.predict_proba(records_to_frame(records))[:, 1]

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[ChurnScore]:
        """One ChurnScore (label, probability, top reasons with the record's values) per record."""
        scores = self.score(records)
        reasons = scores.reasons
        assert reasons is not None
        return [
            ChurnScore(label, probability, self.reasons_of(record, features, values), rest)
            for record, label, probability, features, values, rest in zip(
                records, scores.labels.tolist(), scores.probabilities.tolist(),
                reasons.features.tolist(), reasons.contributions.tolist(), reasons.rest.tolist(),
                strict=True,
            )
        ]

    def reasons_of(
        self, record: Mapping[str, Any], features: Sequence[int], values: Sequence[float],
    ) -> tuple[Reason, ...]:
        """Reason objects for one record from its row of `Reasons` (feature indices, contributions)."""
        names = self.reason_weights.features
        return tuple(
            Reason(names[i], record.get(names[i]), contribution)
            for i, contribution in zip(features, values, strict=True)
        )
