"""The ONNX export (parity before writing), the ONNX predictor and its decision rule, reason codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from sklearn.pipeline import Pipeline

from model import onnx_export
from model.contract import FEATURE_NAMES, default_record
from model.data import load_dataset, records_to_frame
from model.onnx_export import (
    ONNX_FILE,
    PARITY_TOLERANCE,
    PROBABILITIES_OUTPUT,
    TRANSFORMED_OUTPUT,
    OnnxParityError,
    check_parity,
    export_onnx,
    onnx_model_bytes,
)
from model.predictor import Predictor
from model.reasons import TOP_REASONS, contributions, reason_weights, stored_values, top_reasons
from model.train import ARTIFACTS_DIR, METADATA_FILE, build_pipeline


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor()


@pytest.fixture(scope="module")
def customers() -> list[dict[str, Any]]:
    """Every customer of the dataset as a JSON-like record (NaN total charges -> None)."""
    frame = load_dataset()[list(FEATURE_NAMES)]
    return [{k: (None if v != v else v) for k, v in row.items()} for row in frame.to_dict("records")]


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def test_training_wrote_the_onnx_model_and_its_parity(predictor: Predictor) -> None:
    graph = onnx.load(ARTIFACTS_DIR / ONNX_FILE).graph
    assert [i.name for i in graph.input] == list(FEATURE_NAMES)  # one input per contract feature
    assert [o.name for o in graph.output][-2:] == [PROBABILITIES_OUTPUT, TRANSFORMED_OUTPUT]
    parity = json.loads((ARTIFACTS_DIR / METADATA_FILE).read_text())["onnx"]
    assert parity["file"] == ONNX_FILE
    assert parity["holdout_rows"] == predictor.metadata["holdout_rows"]
    assert 0 <= parity["max_probability_difference"] <= PARITY_TOLERANCE


def test_onnx_scores_every_customer_like_scikit_learn(predictor: Predictor, customers: list[dict]) -> None:
    onnx_scores = predictor.predict_proba(customers)
    sklearn_scores = predictor.sklearn_predict_proba(customers)
    assert len(onnx_scores) == len(customers) == 7043
    np.testing.assert_allclose(onnx_scores, sklearn_scores, rtol=0, atol=PARITY_TOLERANCE)
    assert any(c["total_charges"] is None for c in customers)  # the imputer's path is covered


def test_unseen_category_scored_like_scikit_learn(predictor: Predictor) -> None:
    record = default_record() | {"payment_method": "Cryptocurrency", "total_charges": None}
    assert predictor.predict_proba([record])[0] == pytest.approx(
        predictor.sklearn_predict_proba([record])[0], abs=PARITY_TOLERANCE)


def test_parity_failure_names_the_worst_row_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    data = load_dataset()
    frame, y = data[list(FEATURE_NAMES)], (data["churn"] == "Yes").astype(int)
    served: Pipeline = build_pipeline().fit(frame, y)
    other: Pipeline = build_pipeline().fit(frame.iloc[:300], y.iloc[:300])  # a different model
    with pytest.raises(OnnxParityError, match=r"disagree on \d+ of 500 holdout rows .* worst at row \d+"):
        check_parity(served, onnx_model_bytes(other), frame.iloc[:500], threshold=0.5)

    monkeypatch.setattr(onnx_export, "onnx_model_bytes", lambda pipeline: onnx_model_bytes(other))
    with pytest.raises(OnnxParityError, match=r"model\.onnx not written"):
        export_onnx(served, frame.iloc[:500], 0.5, tmp_path / ONNX_FILE)
    assert list(tmp_path.iterdir()) == []


def test_a_label_may_differ_only_at_the_threshold() -> None:
    data = load_dataset()
    frame, y = data[list(FEATURE_NAMES)], (data["churn"] == "Yes").astype(int)
    pipeline: Pipeline = build_pipeline().fit(frame, y)
    holdout = frame.iloc[:200]
    probability = float(pipeline.predict_proba(holdout.iloc[:1])[0, 1])
    # a threshold exactly on a row's probability: float32 may land either side, which is allowed
    report = check_parity(pipeline, onnx_model_bytes(pipeline), holdout, threshold=probability)
    assert report.rows == 200 and report.labels_differing <= 1
    assert report.max_probability_difference <= PARITY_TOLERANCE


def test_decision_rule_follows_the_model_threshold(predictor: Predictor, customers: list[dict]) -> None:
    scores = predictor.score(customers[:500])
    np.testing.assert_array_equal(scores.labels, (scores.probabilities >= predictor.threshold).astype(int))
    at = np.array([predictor.threshold - 1e-9, predictor.threshold, predictor.threshold + 1e-9])
    assert predictor.decide(at) == [0, 1, 1]
    assert {0, 1} == set(scores.labels.tolist())


def test_empty_batch_scores_nothing(predictor: Predictor) -> None:
    scores = predictor.score([])
    assert scores.probabilities.shape == scores.labels.shape == (0,)
    assert scores.reasons is not None and scores.reasons.features.shape == (0, TOP_REASONS)
    assert predictor.predict([]) == []


def test_reason_weights_reproduce_the_classifier_exactly(predictor: Predictor) -> None:
    """Transformed rows @ W summed, plus the intercept, is scikit-learn's decision function."""
    frame = load_dataset()[list(FEATURE_NAMES)]
    transformed = predictor.pipeline[:-1].transform(frame)
    weights = reason_weights(predictor.pipeline)
    per_feature = contributions(transformed, weights)
    assert per_feature.shape == (len(frame), len(FEATURE_NAMES))
    np.testing.assert_allclose(
        per_feature.sum(axis=1) + weights.intercept, predictor.pipeline.decision_function(frame),
        rtol=0, atol=1e-9,
    )
    # each column feeds exactly one feature: the one-hot columns of `contract` feed `contract`
    owners = (weights.weights != 0).sum(axis=1)
    assert owners.max() == 1


def test_contributions_plus_intercept_equal_the_onnx_logit(
    predictor: Predictor, customers: list[dict],
) -> None:
    scores = predictor.score(customers)
    reasons = scores.reasons
    assert reasons is not None
    total = reasons.contributions.sum(axis=1) + reasons.rest + predictor.intercept
    # float32 arithmetic inside the graph: equal within 1e-4 of a logit (exact in float64 above)
    np.testing.assert_allclose(total, _logit(scores.probabilities), rtol=0, atol=1e-4)


def test_top_reasons_are_the_largest_by_absolute_value() -> None:
    contribution = np.array([[0.1, -2.0, 0.5, 1.5, 0.0], [3.0, 0.2, -0.1, 0.0, -0.3]])
    found = top_reasons(contribution)
    assert found.features.tolist() == [[1, 3, 2], [0, 4, 1]]
    assert found.contributions.tolist() == [[-2.0, 1.5, 0.5], [3.0, -0.3, 0.2]]
    np.testing.assert_allclose(found.rest, [0.1, -0.1])
    stored = stored_values(found, ("a", "b", "c", "d", "e"))
    assert stored[0][:6] == ["b", -2.0, "d", 1.5, "c", 0.5]
    assert stored[1][:6] == ["a", 3.0, "e", -0.3, "b", 0.2]
    assert all(type(value) in (str, float) for row in stored for value in row)  # what psycopg adapts


def test_predictions_carry_named_reasons_with_the_record_values(predictor: Predictor) -> None:
    risky = default_record() | {"contract": "Month-to-month", "tenure": 1, "total_charges": 70.0,
                                "internet_service": "Fiber optic"}
    [prediction] = predictor.predict([risky])
    assert len(prediction.reasons) == TOP_REASONS
    sizes = [abs(r.contribution) for r in prediction.reasons]
    assert sizes == sorted(sizes, reverse=True)
    for reason in prediction.reasons:
        assert reason.value == risky[reason.feature]
    by_feature = {r.feature: r.contribution for r in prediction.reasons}
    assert by_feature.get("tenure", 1.0) > 0  # one month of tenure pushes towards churn
    assert by_feature.get("contract", 1.0) > 0  # so does a month-to-month contract


def test_direction_contract_contribution(predictor: Predictor, customers: list[dict]) -> None:
    """A month-to-month contract contributes more churn than a two-year one, for everyone."""
    sample = customers[:100]
    index = FEATURE_NAMES.index("contract")
    weights = predictor.reason_weights

    def contract_contribution(contract: str) -> np.ndarray:
        changed = records_to_frame([c | {"contract": contract} for c in sample])
        rows = predictor.pipeline[:-1].transform(changed)
        return contributions(rows, weights)[:, index]

    assert (contract_contribution("Month-to-month") > contract_contribution("Two year")).all()
