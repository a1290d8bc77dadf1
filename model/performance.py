"""Realized performance: how right the model was, once the outcomes (labels) are known.

Pure functions over arrays, so that the realized-performance task, the promotion gate and the
tests compute the same numbers. Intervals are 95 % by default:

- precision and recall are proportions (TP among predicted churners, TP among actual churners):
  Wilson score interval (E. B. Wilson, "Probable inference, the law of succession, and
  statistical inference", JASA 1927), which stays inside [0, 1] and behaves at small counts.
- F1 and ROC AUC are not proportions: percentile bootstrap (Efron & Tibshirani, "An Introduction
  to the Bootstrap", 1993, ch. 13) over customers, `BOOTSTRAP_DRAWS` resamples with a fixed seed,
  so the same rows always give the same interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import norm, rankdata
from sklearn.metrics import brier_score_loss, f1_score, precision_score, recall_score, roc_auc_score

CONFIDENCE = 0.95
BOOTSTRAP_DRAWS = 1000
BOOTSTRAP_SEED = 20260101


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval; both ends None when it cannot be computed (no rows)."""

    low: float | None
    high: float | None

    def excludes(self, value: float) -> bool:
        """The interval lies entirely on one side of `value`."""
        return self.low is not None and self.high is not None and not self.low <= value <= self.high


@dataclass(frozen=True)
class RealizedPerformance:
    """Metrics of labelled predictions. A metric is None when undefined on these rows
    (ROC AUC with one class only; precision with no predicted churner; anything with no rows)."""

    rows: int
    positives: int  # customers who did churn
    predicted_positives: int
    f1: float | None
    precision: float | None
    recall: float | None
    roc_auc: float | None
    brier: float | None
    f1_interval: Interval
    precision_interval: Interval
    recall_interval: Interval
    roc_auc_interval: Interval

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval of a proportion `successes / trials` (Wilson 1927).

    Raises ValueError when successes is outside 0..trials. No trials: both ends None.
    """
    if not 0 <= successes <= trials:
        raise ValueError(f"successes {successes} outside 0..{trials}")
    if trials == 0:
        return Interval(None, None)
    z = float(norm.ppf(0.5 + confidence / 2))
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def _f1_rows(y: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """F1 of each row of 2-D arrays (one bootstrap resample per row); 0 where it is undefined."""
    tp = (y & predicted).sum(axis=1)
    denominator = y.sum(axis=1) + predicted.sum(axis=1)
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _auc_rows(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row (Mann-Whitney U from mid-ranks, ties counted half); NaN with one class."""
    ranks = rankdata(scores, axis=1)
    positives = y.sum(axis=1)
    negatives = y.shape[1] - positives
    rank_sum = (ranks * y).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), auc, np.nan)


def bootstrap_intervals(
    y_true: np.ndarray, predicted: np.ndarray, probability: np.ndarray,
    draws: int = BOOTSTRAP_DRAWS, confidence: float = CONFIDENCE, seed: int = BOOTSTRAP_SEED,
) -> tuple[Interval, Interval]:
    """Percentile-bootstrap intervals of (F1, ROC AUC), resampling customers with replacement."""
    n = len(y_true)
    if n == 0:
        return Interval(None, None), Interval(None, None)
    rng = np.random.default_rng(seed)
    tail = (1 - confidence) / 2 * 100
    f1s, aucs = [], []
    for start in range(0, draws, 200):  # chunks keep the memory at 200 x n
        index = rng.integers(0, n, size=(min(200, draws - start), n))
        y, p = y_true[index].astype(bool), predicted[index].astype(bool)
        f1s.append(_f1_rows(y, p))
        aucs.append(_auc_rows(y.astype(int), probability[index]))
    f1_all, auc_all = np.concatenate(f1s), np.concatenate(aucs)
    auc_all = auc_all[~np.isnan(auc_all)]
    f1_interval = Interval(*(float(v) for v in np.percentile(f1_all, [tail, 100 - tail])))
    auc_interval = (Interval(*(float(v) for v in np.percentile(auc_all, [tail, 100 - tail])))
                    if len(auc_all) else Interval(None, None))
    return f1_interval, auc_interval


def realized_performance(
    y_true: np.ndarray | list[int], predicted: np.ndarray | list[int],
    probability: np.ndarray | list[float], draws: int = BOOTSTRAP_DRAWS,
) -> RealizedPerformance:
    """F1, precision, recall (churn = 1 is the positive class), ROC AUC and Brier score of
    labelled predictions, each with a 95 % interval (Brier without one).

    `y_true` and `predicted` hold 0/1, `probability` the churn probability the model gave; all of
    the same length (ValueError otherwise). The point values are scikit-learn's own.
    """
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(predicted, dtype=int)
    s = np.asarray(probability, dtype=float)
    if not len(y) == len(p) == len(s):
        raise ValueError(f"{len(y)} outcomes, {len(p)} predicted labels, {len(s)} probabilities")
    n, positives, predicted_positives = len(y), int(y.sum()), int(p.sum())
    tp = int((y & p).sum())
    f1_interval, auc_interval = bootstrap_intervals(y, p, s, draws=draws)
    both_classes = 0 < positives < n
    return RealizedPerformance(
        rows=n,
        positives=positives,
        predicted_positives=predicted_positives,
        f1=float(f1_score(y, p, zero_division=0)) if n else None,
        precision=float(precision_score(y, p, zero_division=0)) if predicted_positives else None,
        recall=float(recall_score(y, p, zero_division=0)) if positives else None,
        roc_auc=float(roc_auc_score(y, s)) if both_classes else None,
        brier=float(brier_score_loss(y, s)) if n else None,
        f1_interval=f1_interval,
        precision_interval=wilson_interval(tp, predicted_positives),
        recall_interval=wilson_interval(tp, positives),
        roc_auc_interval=auc_interval if both_classes else Interval(None, None),
    )
