"""Admission: the checks a model version passes before anything serves it or an alias moves to it.

    admit(artifacts_dir, expected_version=None) -> Predictor     raises AdmissionError
    canary_scores(model_path) -> list[float]                      what training records

A version is loaded and checked, in this order (the first failure is the refusal's reason):

- `unloadable`: its artifacts are missing or do not load (joblib, metadata, ONNX session);
- `metadata`: its metadata is inconsistent: no version string or not the one the registry names,
  a threshold outside (0, 1), a feature list other than the contract's;
- `graph_inputs` / `graph_outputs`: the ONNX graph's inputs (names and element types) are not the
  contract's features, or its outputs lack `probabilities` / `transformed_features`;
- `canary`: the contract's canary records (`model.contract.canary_records`) do not score to
  finite probabilities equal, within PARITY_TOLERANCE, to the ones recorded at training
  (`metadata["canary"]`); a version trained before canaries were recorded is compared with its
  own scikit-learn pipeline instead (the ONNX export's parity reference).

Pure: no database, no registry, no service. The API (api/serving.py) and the lifecycle CLI
(jobs/lifecycle.py) call `admit` on a downloaded version folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from model.contract import FEATURE_NAMES, FEATURES, canary_records
from model.onnx_export import (
    PARITY_TOLERANCE,
    PROBABILITIES_OUTPUT,
    TRANSFORMED_OUTPUT,
    inference_session,
    records_to_feeds,
)
from model.predictor import Predictor

REASONS = ("unloadable", "metadata", "graph_inputs", "graph_outputs", "canary")
"""Every refusal reason, in the order they are checked (a metric label: keep the set small)."""


class AdmissionError(RuntimeError):
    """A version that must not be served: `reason` (one of REASONS) and a sentence saying why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _onnx_type(feature_dtype: str, categorical: bool) -> str:
    """The ONNX Runtime element type the contract's feature is fed as (model/onnx_export.py)."""
    if feature_dtype == "str":
        return "tensor(string)"
    return "tensor(int64)" if categorical else "tensor(float)"


def check_metadata(metadata: dict[str, Any], expected_version: str | None = None) -> None:
    """Raise AdmissionError("metadata") unless version, threshold and features are consistent."""
    version = metadata.get("model_version")
    if not isinstance(version, str) or not version:
        raise AdmissionError("metadata", "metadata.json names no model_version")
    if expected_version is not None and version != expected_version:
        raise AdmissionError("metadata",
                             f"metadata.json says {version!r}, the registry {expected_version!r}")
    threshold = metadata.get("threshold")
    if not isinstance(threshold, int | float) or not 0 < float(threshold) < 1:
        raise AdmissionError("metadata", f"threshold {threshold!r} is not a probability in (0, 1)")
    features = metadata.get("features")
    if features is not None and list(features) != list(FEATURE_NAMES):
        missing = sorted(set(FEATURE_NAMES) - set(features))
        extra = sorted(set(features) - set(FEATURE_NAMES))
        raise AdmissionError("metadata", f"trained on other features than the contract's "
                                           f"(missing {missing or 'none'}, extra {extra or 'none'})")


def check_graph(predictor: Predictor) -> None:
    """Raise AdmissionError unless the graph's inputs are the contract's and its outputs are ours."""
    expected = {f.name: _onnx_type(f.dtype, f.is_categorical) for f in FEATURES}
    found = {node.name: node.type for node in predictor.session.get_inputs()}
    if found != expected:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        typed = sorted(name for name in set(found) & set(expected) if found[name] != expected[name])
        raise AdmissionError("graph_inputs", "the ONNX graph's inputs are not the contract's: "
                               f"missing {missing or 'none'}, unexpected {extra or 'none'}, "
                               f"other type {[f'{n}: {found[n]}' for n in typed] or 'none'}")
    outputs = {node.name for node in predictor.session.get_outputs()}
    lacking = sorted({PROBABILITIES_OUTPUT, TRANSFORMED_OUTPUT} - outputs)
    if lacking:
        raise AdmissionError("graph_outputs", f"the ONNX graph lacks the outputs {lacking}")


def check_canary(predictor: Predictor) -> np.ndarray:
    """Score the canary records (reasons included); raise AdmissionError("canary") unless the
    probabilities are finite and equal to the recorded ones. Returns them, shape (records,)."""
    records = canary_records()
    try:
        scores = predictor.score(records, reasons=True)
    except Exception as error:  # any failure to score is the finding
        raise AdmissionError("canary", f"the canary records do not score: {type(error).__name__}: "
                                         f"{error}") from error
    got = scores.probabilities
    if got.shape != (len(records),) or not np.all(np.isfinite(got)) or np.any((got < 0) | (got > 1)):
        raise AdmissionError("canary", f"the canary records score to {got.tolist()}, not probabilities")
    recorded = (predictor.metadata.get("canary") or {}).get("probabilities")
    if recorded is not None:
        expected, source = np.asarray(recorded, dtype=np.float64), "recorded at training"
    else:  # trained before canaries were recorded: its own scikit-learn pipeline is the reference
        expected, source = predictor.sklearn_predict_proba(records), "of its scikit-learn pipeline"
    if expected.shape != got.shape:
        raise AdmissionError("canary", f"{len(expected)} canary scores {source}, {len(got)} records")
    worst = int(np.argmax(np.abs(got - expected)))
    if abs(got[worst] - expected[worst]) > PARITY_TOLERANCE:
        raise AdmissionError("canary", f"canary record {worst} scores {got[worst]:.8f}, "
                                         f"{expected[worst]:.8f} {source} (tolerance {PARITY_TOLERANCE:g})")
    return got


def admit(artifacts_dir: Path, expected_version: str | None = None) -> Predictor:
    """Load the version in `artifacts_dir` and run every check; the loaded Predictor when it passes.

    `expected_version`: the model version the registry names it by (its `model_version` tag).
    Raises AdmissionError(reason, detail); nothing is kept of a refused version.
    """
    try:
        predictor = Predictor(artifacts_dir)
    except Exception as error:  # a missing file, a corrupt pickle, an ONNX file that does not load
        raise AdmissionError("unloadable", f"{type(error).__name__}: {error}") from error
    check_metadata(predictor.metadata, expected_version)
    check_graph(predictor)
    check_canary(predictor)
    return predictor


def canary_scores(model_path: Path) -> list[float]:
    """The churn probabilities the ONNX model at `model_path` gives the canary records (training
    stores them in metadata.json under `canary.probabilities`)."""
    session = inference_session(model_path)
    probabilities = session.run([PROBABILITIES_OUTPUT], records_to_feeds(canary_records()))[0][:, 1]
    return [float(p) for p in probabilities.astype(np.float64)]

