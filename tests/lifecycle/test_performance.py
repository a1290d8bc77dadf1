"""Realized-performance metrics: point values equal scikit-learn's, intervals as published."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, f1_score, precision_score, recall_score, roc_auc_score

from model.performance import Interval, realized_performance, wilson_interval


def _sample(n: int = 400, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    probability = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
    return y, (probability >= 0.5).astype(int), probability


def test_point_values_equal_scikit_learn() -> None:
    y, label, probability = _sample()
    result = realized_performance(y, label, probability)
    assert result.rows == 400 and result.positives == int(y.sum())
    assert result.f1 == pytest.approx(f1_score(y, label))
    assert result.precision == pytest.approx(precision_score(y, label))
    assert result.recall == pytest.approx(recall_score(y, label))
    assert result.roc_auc == pytest.approx(roc_auc_score(y, probability))
    assert result.brier == pytest.approx(brier_score_loss(y, probability))


def test_intervals_contain_the_point_value_and_narrow_with_more_rows() -> None:
    small = realized_performance(*_sample(100))
    large = realized_performance(*_sample(3000))
    for result in (small, large):
        for name in ("f1", "precision", "recall", "roc_auc"):
            interval: Interval = getattr(result, f"{name}_interval")
            assert interval.low is not None and interval.high is not None
            assert interval.low <= getattr(result, name) <= interval.high, name
    width = lambda i: i.high - i.low  # noqa: E731
    assert width(large.f1_interval) < width(small.f1_interval) / 2
    assert width(large.roc_auc_interval) < width(small.roc_auc_interval) / 2


def test_bootstrap_is_repeatable() -> None:
    assert realized_performance(*_sample()).f1_interval == realized_performance(*_sample()).f1_interval


def test_wilson_interval_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17, table I: 81/263 -> 0.2553 to 0.3662
    interval = wilson_interval(81, 263)
    assert interval.low == pytest.approx(0.2553, abs=1e-4)
    assert interval.high == pytest.approx(0.3662, abs=1e-4)
    assert wilson_interval(0, 10).low == 0.0
    assert wilson_interval(10, 10).high == pytest.approx(1.0)
    assert wilson_interval(0, 10).high == pytest.approx(0.2775, abs=1e-4)  # Newcombe table I, 0/10
    assert wilson_interval(0, 0) == Interval(None, None)
    with pytest.raises(ValueError, match="outside"):
        wilson_interval(5, 4)


def test_undefined_metrics_are_none_not_zero() -> None:
    nobody_churned = realized_performance([0, 0, 0], [0, 1, 0], [0.1, 0.6, 0.2])
    assert nobody_churned.roc_auc is None and nobody_churned.recall is None
    assert nobody_churned.roc_auc_interval == Interval(None, None)
    assert nobody_churned.precision == 0.0
    empty = realized_performance([], [], [])
    assert empty.rows == 0 and empty.f1 is None and empty.f1_interval == Interval(None, None)
    with pytest.raises(ValueError, match="2 outcomes, 1 predicted"):
        realized_performance([0, 1], [0], [0.1, 0.2])


def test_interval_excludes() -> None:
    assert Interval(0.4, 0.5).excludes(0.6) and not Interval(0.4, 0.7).excludes(0.6)
    assert not Interval(None, None).excludes(0.6)
