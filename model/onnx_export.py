"""The fitted pipeline as an ONNX graph, checked against scikit-learn before it is written.

    to_onnx(pipeline) -> onnx.ModelProto            the converted graph (skl2onnx)
    onnx_model_bytes(pipeline) -> bytes             the same, serialized (what a registry logs)
    check_parity(pipeline, model_bytes, X, threshold) -> ParityReport   raises OnnxParityError
    export_onnx(pipeline, X_holdout, threshold, path) -> ParityReport   parity first, then the file
    records_to_feeds(records) / frame_to_feeds(frame) -> {input name: column array}

The graph has one input per contract feature, each a column of shape (rows, 1): text features as
strings, the 0/1 flags as int64, the numeric features as float32 (skl2onnx's imputer and scaler
work in float32; ONNX Runtime has no double `Imputer`). It has two outputs: `probabilities`
(rows, 2), the classifier's class probabilities, and `transformed_features` (rows, columns after
the one-hot encoding and scaling, float32), the classifier's input, from which the reason codes
are computed (`model/reasons.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from sklearn.pipeline import Pipeline

from model.contract import FEATURE_NAMES, FEATURES, Feature

ONNX_FILE = "model.onnx"
PROBABILITIES_OUTPUT = "probabilities"
TRANSFORMED_OUTPUT = "transformed_features"
PARITY_TOLERANCE = 1e-5
"""Largest allowed |ONNX - scikit-learn| churn probability on the holdout (the issue's bound;
float32 arithmetic in the graph gives ~1e-7 on this model)."""
NUMERIC_DTYPE = np.float32


class OnnxParityError(RuntimeError):
    """The converted graph does not score the holdout like scikit-learn: nothing was written."""


@dataclass(frozen=True)
class ParityReport:
    """How closely the ONNX graph reproduces scikit-learn on the holdout.

    rows: holdout rows compared; max_probability_difference: largest |p_onnx - p_sklearn|;
    labels_differing: rows whose label differs (allowed only within the tolerance of the threshold).
    """

    rows: int
    max_probability_difference: float
    labels_differing: int

    def as_metadata(self) -> dict[str, Any]:
        return {"file": ONNX_FILE, "holdout_rows": self.rows,
                "max_probability_difference": self.max_probability_difference,
                "labels_differing_at_threshold": self.labels_differing,
                "tolerance": PARITY_TOLERANCE}


def _input_type(feature: Feature) -> Any:
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    if feature.dtype == "str":
        return StringTensorType([None, 1])
    if feature.is_categorical:  # 0/1 flags, one-hot encoded as integers
        return Int64TensorType([None, 1])
    return FloatTensorType([None, 1])  # numeric: imputed and scaled together, one type for all


def _column_dtype(feature: Feature) -> Any:
    if feature.dtype == "str":
        return object
    return np.int64 if feature.is_categorical else NUMERIC_DTYPE


def to_onnx(pipeline: Pipeline) -> onnx.ModelProto:
    """Convert the fitted preprocessing + logistic-regression pipeline (skl2onnx).

    The classifier's input is exposed as a second output, `transformed_features`, so that one
    run gives both the probabilities and what the reason codes need. skl2onnx is imported here,
    not at module level: serving (model/predictor.py) needs ONNX Runtime only, and importing the
    converter cost the API a second of startup.
    """
    from skl2onnx import convert_sklearn

    classifier = pipeline.steps[-1][1]
    model = convert_sklearn(
        pipeline,
        initial_types=[(f.name, _input_type(f)) for f in FEATURES],
        options={id(classifier): {"zipmap": False}},  # plain (rows, 2) array, not a list of dicts
    )
    graph = model.graph
    [classifier_node] = [n for n in graph.node if n.output and PROBABILITIES_OUTPUT in n.output]
    width = sum(len(c) for c in _one_hot_categories(pipeline)) + _numeric_width(pipeline)
    graph.node.append(onnx.helper.make_node(
        "Identity", [classifier_node.input[0]], [TRANSFORMED_OUTPUT], name="expose_transformed",
    ))
    graph.output.append(onnx.helper.make_tensor_value_info(
        TRANSFORMED_OUTPUT, onnx.TensorProto.FLOAT, [None, width],
    ))
    onnx.checker.check_model(model)
    return model


def _one_hot_categories(pipeline: Pipeline) -> list[np.ndarray]:
    preprocess = pipeline.named_steps["preprocess"]
    return list(preprocess.named_transformers_["categorical"].categories_)


def _numeric_width(pipeline: Pipeline) -> int:
    preprocess = pipeline.named_steps["preprocess"]
    return sum(len(columns) for name, _, columns in preprocess.transformers_ if name == "numeric")


def onnx_model_bytes(pipeline: Pipeline) -> bytes:
    """The serialized ONNX model of a fitted pipeline (what `model.onnx` holds, for a registry)."""
    return to_onnx(pipeline).SerializeToString()


def inference_session(model: bytes | Path, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime session on the CPU with `threads` intra-op threads and one inter-op thread.

    One thread is right for this graph on this machine (bench/bench_predictor.py measures 1 vs 2):
    a 10,000-row batch spends its time in the per-column string encoders, which do not split
    across threads, and a second thread only adds synchronisation; the API serves concurrent
    requests from several threads anyway.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


_FEATURE_GETTER = itemgetter(*FEATURE_NAMES)


def records_to_feeds(records: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Contract-valid records to the graph's inputs: one (rows, 1) array per feature.

    Built column-wise: one tuple per record (a C-level itemgetter), transposed with zip, one
    numpy conversion per column. Missing numbers (None) become NaN, which the graph imputes.
    Raises ValueError/TypeError on a value the column's type cannot hold.
    """
    columns = zip(*map(_FEATURE_GETTER, records), strict=True)
    return {
        feature.name: np.array(values, dtype=_column_dtype(feature)).reshape(-1, 1)
        for feature, values in zip(FEATURES, columns, strict=True)
    }


def frame_to_feeds(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A frame with the feature columns (training data, a holdout) to the graph's inputs."""
    feeds = {}
    for feature in FEATURES:
        column = frame[feature.name]
        values = (column.to_numpy(dtype=NUMERIC_DTYPE, na_value=np.nan) if feature.is_numeric
                  else column.to_numpy(dtype=_column_dtype(feature)))
        feeds[feature.name] = values.reshape(-1, 1)
    return feeds


def check_parity(
    pipeline: Pipeline, model_bytes: bytes, holdout: pd.DataFrame, threshold: float,
    tolerance: float = PARITY_TOLERANCE,
) -> ParityReport:
    """Score the holdout both ways; raise OnnxParityError unless they agree.

    Agreement: every churn probability within `tolerance` of scikit-learn's, and every label
    (probability >= threshold) equal, except where scikit-learn's probability is within
    `tolerance` of the threshold (there a float32 rounding may legitimately flip it).
    """
    expected = pipeline.predict_proba(holdout)[:, 1]
    session = inference_session(model_bytes)
    got = session.run([PROBABILITIES_OUTPUT], frame_to_feeds(holdout))[0][:, 1].astype(np.float64)
    difference = np.abs(got - expected)
    worst = int(np.argmax(difference)) if len(difference) else 0
    flipped = (got >= threshold) != (expected >= threshold)
    unexplained = flipped & (np.abs(expected - threshold) > tolerance)
    if len(difference) and difference[worst] > tolerance:
        raise OnnxParityError(
            f"ONNX and scikit-learn disagree on {int((difference > tolerance).sum())} of "
            f"{len(difference)} holdout rows by more than {tolerance:g}: worst at row {worst}, "
            f"{got[worst]:.8f} vs {expected[worst]:.8f}; model.onnx not written"
        )
    if unexplained.any():
        raise OnnxParityError(
            f"ONNX and scikit-learn give different labels on {int(unexplained.sum())} holdout rows "
            f"away from the threshold {threshold:.6f} (first: row {int(np.argmax(unexplained))}); "
            "model.onnx not written"
        )
    return ParityReport(
        rows=len(difference), max_probability_difference=float(difference.max(initial=0.0)),
        labels_differing=int(flipped.sum()),
    )


def export_onnx(
    pipeline: Pipeline, holdout: pd.DataFrame, threshold: float, path: Path,
) -> ParityReport:
    """Convert, check parity on the holdout, and only then write `path` (atomically).

    Raises OnnxParityError (nothing written) when the graph does not reproduce scikit-learn.
    """
    model_bytes = onnx_model_bytes(pipeline)
    report = check_parity(pipeline, model_bytes, holdout, threshold)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(model_bytes)
    partial.replace(path)
    return report
