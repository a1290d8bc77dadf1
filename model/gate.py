"""The promotion gate: does the challenger replace the champion?

Both models are judged on the same customers: the recent labelled predictions that the champion
served and the challenger scored in shadow. The challenger is promoted when

1. there are at least `min_rows` such customers,
2. it beats the champion on the chosen metric by at least `min_margin` (absolute), and
3. on no declared segment (contract type, internet service, tenure band) with at least
   `min_segment_rows` customers does it lose by more than `segment_tolerance`.

Otherwise the champion stays and the decision says why, one reason per failed rule. The
segments are the usual ones of telco churn analyses (IBM's Telco sample guide): contract,
internet service and tenure band, where churn rates differ most.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

# metric name -> (function of (y, label, probability), higher is better)
METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray, np.ndarray], float], bool]] = {
    "f1": (lambda y, label, _: float(f1_score(y, label, zero_division=0)), True),
    "precision": (lambda y, label, _: float(precision_score(y, label, zero_division=0)), True),
    "recall": (lambda y, label, _: float(recall_score(y, label, zero_division=0)), True),
    "roc_auc": (lambda y, _, p: float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan"), True),
    "brier": (lambda y, _, p: float(np.mean((p - y) ** 2)), False),
}
# tenure in months -> band; the bands of the usual telco churn analyses (first year, ...)
TENURE_BANDS: tuple[tuple[int, int, str], ...] = (
    (0, 12, "0-12 months"), (13, 24, "13-24 months"), (25, 48, "25-48 months"), (49, 10_000, "49+ months"),
)
SEGMENT_COLUMNS = ("contract", "internet_service", "tenure_band")


def tenure_band(tenure: int) -> str:
    """The tenure band of a number of months (0-12, 13-24, 25-48, 49+)."""
    for low, high, name in TENURE_BANDS:
        if low <= tenure <= high:
            return name
    raise ValueError(f"tenure {tenure} is negative")


@dataclass(frozen=True)
class GatePolicy:
    """The gate's rules; the defaults come from GATE_* settings."""

    metric: str = "f1"
    min_rows: int = 200
    min_margin: float = 0.01
    segment_tolerance: float = 0.05
    min_segment_rows: int = 30

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown gate metric {self.metric!r}: one of {sorted(METRICS)}")


@dataclass(frozen=True)
class EvaluationSet:
    """The same labelled customers as both models scored them (arrays of one length)."""

    outcome: np.ndarray  # 1 = churned
    champion_label: np.ndarray
    champion_probability: np.ndarray
    challenger_label: np.ndarray
    challenger_probability: np.ndarray
    segments: Mapping[str, np.ndarray]  # segment column -> value per customer

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> EvaluationSet:
        """From rows with outcome, champion_label/_probability, challenger_label/_probability,
        contract, internet_service and tenure (months)."""
        def column(name: str, dtype: Any) -> np.ndarray:
            return np.array([row[name] for row in rows], dtype=dtype)

        return cls(
            outcome=column("outcome", int),
            champion_label=column("champion_label", int),
            champion_probability=column("champion_probability", float),
            challenger_label=column("challenger_label", int),
            challenger_probability=column("challenger_probability", float),
            segments={
                "contract": column("contract", object),
                "internet_service": column("internet_service", object),
                "tenure_band": np.array([tenure_band(int(row["tenure"])) for row in rows], dtype=object),
            },
        )


@dataclass(frozen=True)
class SegmentComparison:
    segment: str  # e.g. "contract"
    value: str  # e.g. "Month-to-month"
    rows: int
    champion: float
    challenger: float
    regression: bool  # the challenger loses by more than the tolerance


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided and why (`reasons` empty when it promotes)."""

    promote: bool
    metric: str
    rows: int
    champion: float | None
    challenger: float | None
    reasons: list[str]
    segments: list[SegmentComparison] = field(default_factory=list)
    enough_rows: bool = True  # False: wait for more labels rather than reject the challenger

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _score(metric: str, y: np.ndarray, label: np.ndarray, probability: np.ndarray) -> float:
    return METRICS[metric][0](y, label, probability)


def _gain(metric: str, champion: float, challenger: float) -> float:
    """How much better the challenger is (positive = better), whatever the metric's direction."""
    return challenger - champion if METRICS[metric][1] else champion - challenger


def evaluate_gate(data: EvaluationSet, policy: GatePolicy = GatePolicy()) -> GateDecision:
    """Apply the gate's three rules to one evaluation set (see the module docstring)."""
    rows, metric = len(data.outcome), policy.metric
    if rows < policy.min_rows:
        return GateDecision(
            promote=False, metric=metric, rows=rows, champion=None, challenger=None,
            reasons=[f"only {rows} labelled customers scored by both models; the gate needs "
                     f"{policy.min_rows} (GATE_MIN_ROWS)"],
            enough_rows=False,
        )
    champion = _score(metric, data.outcome, data.champion_label, data.champion_probability)
    challenger = _score(metric, data.outcome, data.challenger_label, data.challenger_probability)
    reasons = []
    gain = _gain(metric, champion, challenger)
    if not gain >= policy.min_margin:
        reasons.append(f"{metric}: challenger {challenger:.4f} vs champion {champion:.4f}, a gain of "
                       f"{gain:+.4f}, below the required margin {policy.min_margin:+.4f}")
    segments = _compare_segments(data, policy)
    for s in segments:
        if s.regression:
            reasons.append(f"segment {s.segment}={s.value} ({s.rows} customers): {metric} "
                           f"{s.challenger:.4f} vs {s.champion:.4f}, worse by more than "
                           f"{policy.segment_tolerance}")
    return GateDecision(
        promote=not reasons, metric=metric, rows=rows, champion=champion, challenger=challenger,
        reasons=reasons, segments=segments,
    )


def _compare_segments(data: EvaluationSet, policy: GatePolicy) -> list[SegmentComparison]:
    """Metric of both models per segment value; segments below min_segment_rows are not judged."""
    found = []
    for segment in SEGMENT_COLUMNS:
        values = data.segments[segment]
        for value in sorted(set(values.tolist())):
            mask = values == value
            if mask.sum() < policy.min_segment_rows:
                continue
            y = data.outcome[mask]
            champion = _score(policy.metric, y, data.champion_label[mask], data.champion_probability[mask])
            challenger = _score(policy.metric, y, data.challenger_label[mask],
                                data.challenger_probability[mask])
            if np.isnan(champion) or np.isnan(challenger):
                continue  # e.g. ROC AUC in a segment where nobody (or everybody) churned
            found.append(SegmentComparison(
                segment=segment, value=str(value), rows=int(mask.sum()), champion=champion,
                challenger=challenger,
                regression=_gain(policy.metric, champion, challenger) < -policy.segment_tolerance,
            ))
    return found
