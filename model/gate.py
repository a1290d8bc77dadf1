"""The promotion gate: does the challenger replace the champion?

Both models are judged on the same customers: the recent labelled predictions that the champion
served and the challenger scored in shadow. The challenger is promoted when

1. there are at least `min_rows` such customers (GATE_MIN_ROWS; fewer: wait, no verdict),
2. a paired test shows its gain on the chosen metric (GATE_METRIC) above `min_margin`
   (GATE_MIN_MARGIN) at the stated false-promotion rate (GATE_FALSE_PROMOTION_RATE, 5 %), and
3. on no declared segment (contract type, internet service, tenure band) with at least
   `min_segment_rows` customers does it lose by more than `segment_tolerance`.

Otherwise the champion stays and the decision says why, one reason per failed rule. The
segments are the usual ones of telco churn analyses (IBM's Telco sample guide): contract,
internet service and tenure band, where churn rates differ most.

**The test (rule 2): a one-sided paired bootstrap of the metric difference.** The gain
D = metric(challenger) - metric(champion) (champion - challenger for the lower-is-better Brier
score) is resampled `bootstrap_draws` times, each draw resampling customers with replacement and
scoring both models on the SAME resampled customers (pairing: the two models err on many of the
same customers, and the test must not count that shared noise twice). The null hypothesis is
"true gain <= min_margin"; the p-value is (1 + #{draws with D* <= min_margin}) / (draws + 1) and
the challenger passes when p <= false_promotion_rate, i.e. when the one-sided lower confidence
bound of the gain (the rate's quantile of D*; percentile bootstrap, Efron & Tibshirani, "An
Introduction to the Bootstrap", 1993, ch. 13 and 16) lies above the margin. Why this test:

- F1, the default metric, is not a mean over customers (it is a ratio of counts), so no
  per-customer difference exists for a paired t-test; the bootstrap tests the gate metric itself,
  whichever is configured (F1, precision, recall, ROC AUC, Brier).
- McNemar's test (discordant decisions) tests accuracy, not F1: a challenger can trade false
  positives for false negatives and change F1 while McNemar sees nothing, or the reverse.
- DeLong's test is for ROC AUC only, while the decision uses the thresholded labels.

For the label metrics (F1, precision, recall) a customer matters only through its cell
(outcome, champion label, challenger label), so a bootstrap draw is a multinomial draw of the
eight cell counts: exactly the customer resampling, at a cost independent of the rows. ROC AUC and
Brier resample customer indices. The seed (`bootstrap_seed`) is fixed, so the same customers
always give the same decision. The margin is the tested null difference (not an extra
requirement on the point estimate): a promotion means "better by more than the margin, with at
most the stated chance of being wrong". bench/gate_power.py measures the false-promotion rate of
a challenger trained exactly like the champion, and the power for a stated true gain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from core.settings import LifecycleSettings
from model.performance import _auc_rows


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    return np.where(denominator > 0, numerator / np.maximum(denominator, 1), 0.0)


# label metric -> its value from confusion counts (arrays of tp, predicted positives, positives),
# the same numbers as scikit-learn's f1/precision/recall_score with zero_division=0
CONFUSION_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "f1": lambda tp, predicted, positives: _ratio(2 * tp, predicted + positives),
    "precision": lambda tp, predicted, _: _ratio(tp, predicted),
    "recall": lambda tp, _, positives: _ratio(tp, positives),
}


def _confusion_metric(name: str) -> Callable[[np.ndarray, np.ndarray, np.ndarray], float]:
    def score(y: np.ndarray, label: np.ndarray, _: np.ndarray) -> float:
        y, label = np.asarray(y, dtype=bool), np.asarray(label, dtype=bool)
        counts = np.array([(y & label).sum(), label.sum(), y.sum()])
        return float(CONFUSION_METRICS[name](*counts))
    return score


# metric name -> (function of (y, label, probability), higher is better)
METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray, np.ndarray], float], bool]] = {
    "f1": (_confusion_metric("f1"), True),
    "precision": (_confusion_metric("precision"), True),
    "recall": (_confusion_metric("recall"), True),
    "roc_auc": (lambda y, _, p: float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan"), True),
    "brier": (lambda y, _, p: float(np.mean((p - y) ** 2)), False),
}
TEST_NAME = "paired bootstrap, one-sided"
"""What GateDecision.test says (the method: see the module docstring)."""
BOOTSTRAP_SEED = 20260102
"""Seed of the gate's bootstrap: the same customers always give the same decision."""
_DEFAULTS = LifecycleSettings.model_fields  # the settings' defaults, one home (core/settings.py)
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
    """The gate's rules; the defaults are the GATE_* settings' defaults (`from_settings` reads them
    as configured)."""

    metric: str = _DEFAULTS["gate_metric"].default
    min_rows: int = _DEFAULTS["gate_min_rows"].default
    min_margin: float = _DEFAULTS["gate_min_margin"].default  # the test's null gain
    segment_tolerance: float = _DEFAULTS["gate_segment_tolerance"].default
    min_segment_rows: int = _DEFAULTS["gate_min_segment_rows"].default
    false_promotion_rate: float = _DEFAULTS["gate_false_promotion_rate"].default
    bootstrap_draws: int = _DEFAULTS["gate_bootstrap_draws"].default
    bootstrap_seed: int = BOOTSTRAP_SEED

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown gate metric {self.metric!r}: one of {sorted(METRICS)}")
        if not 0 < self.false_promotion_rate < 0.5:
            raise ValueError(f"the false-promotion rate must lie strictly between 0 and 0.5, got "
                             f"{self.false_promotion_rate}")
        if self.bootstrap_draws < 1:
            raise ValueError(f"bootstrap_draws must be at least 1, got {self.bootstrap_draws}")

    @classmethod
    def from_settings(cls, settings: LifecycleSettings | None = None) -> GatePolicy:
        """The policy of the GATE_* settings (read from the environment when not given)."""
        s = settings or LifecycleSettings()
        return cls(metric=s.gate_metric, min_rows=s.gate_min_rows, min_margin=s.gate_min_margin,
                   segment_tolerance=s.gate_segment_tolerance, min_segment_rows=s.gate_min_segment_rows,
                   false_promotion_rate=s.gate_false_promotion_rate, bootstrap_draws=s.gate_bootstrap_draws)


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
class PairedTest:
    """The paired bootstrap test of the gain (see the module docstring)."""

    gain: float  # challenger - champion on the metric (positive = better, whatever its direction)
    p_value: float  # of the null "true gain <= null_gain"
    gain_low: float  # one-sided lower confidence bound of the gain at 1 - false_promotion_rate
    gain_high: float  # upper bound at the same level: [low, high] is a (1 - 2 x rate) interval
    draws: int  # resamples that gave a defined metric on both models


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided and why (`reasons` empty when it promotes).

    The test's fields (`test`, `p_value`, `gain`, `gain_low`, `gain_high`, `null_gain`,
    `false_promotion_rate`, `bootstrap_draws`, `bootstrap_seed`) are None when the gate did not
    test (too few customers, or a metric undefined on them).
    """

    promote: bool
    metric: str
    rows: int
    champion: float | None
    challenger: float | None
    reasons: list[str]
    segments: list[SegmentComparison] = field(default_factory=list)
    enough_rows: bool = True  # False: wait for more labels rather than reject the challenger
    test: str | None = None  # TEST_NAME
    p_value: float | None = None  # promote needs p_value <= false_promotion_rate
    gain: float | None = None  # challenger - champion (positive = better; Brier: champion - challenger)
    gain_low: float | None = None  # one-sided lower confidence bound of the gain (promote: > null_gain)
    gain_high: float | None = None  # upper end of the (1 - 2 x rate) percentile interval
    null_gain: float | None = None  # the margin the gain is tested against (GATE_MIN_MARGIN)
    false_promotion_rate: float | None = None  # the test's one-sided level (GATE_FALSE_PROMOTION_RATE)
    bootstrap_draws: int | None = None
    bootstrap_seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (what the decision stores as its details)."""
        return asdict(self)


def _score(metric: str, y: np.ndarray, label: np.ndarray, probability: np.ndarray) -> float:
    return METRICS[metric][0](y, label, probability)


def _gain(metric: str, champion: float, challenger: float) -> float:
    """How much better the challenger is (positive = better), whatever the metric's direction."""
    return challenger - champion if METRICS[metric][1] else champion - challenger


def paired_bootstrap(data: EvaluationSet, metric: str, *, null_gain: float, rate: float, draws: int,
                     seed: int = BOOTSTRAP_SEED) -> PairedTest | None:
    """One-sided paired bootstrap of the gain of the challenger over the champion on `metric`.

    Resamples customers with replacement (the same customers for both models) `draws` times; see
    the module docstring. Returns None when the metric is undefined on the rows themselves (e.g.
    ROC AUC with one class). Raises ValueError on an unknown metric.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown gate metric {metric!r}: one of {sorted(METRICS)}")
    gain = _gain(metric, _score(metric, data.outcome, data.champion_label, data.champion_probability),
                 _score(metric, data.outcome, data.challenger_label, data.challenger_probability))
    if np.isnan(gain):
        return None
    rng = np.random.default_rng(seed)
    gains = (_bootstrap_label_gains(data, metric, draws, rng) if metric in CONFUSION_METRICS
             else _bootstrap_score_gains(data, metric, draws, rng))
    gains = gains[~np.isnan(gains)]
    if not len(gains):
        return None
    low, high = (float(v) for v in np.quantile(gains, [rate, 1 - rate]))
    p_value = (1 + int(np.sum(gains <= null_gain + 1e-12))) / (len(gains) + 1)
    return PairedTest(gain=float(gain), p_value=p_value, gain_low=low, gain_high=high, draws=len(gains))


def _bootstrap_label_gains(data: EvaluationSet, metric: str, draws: int,
                           rng: np.random.Generator) -> np.ndarray:
    """Gains of `draws` resamples, as multinomial draws of the (outcome, champion, challenger) cells."""
    y, a, b = (np.asarray(v, dtype=int) for v in (data.outcome, data.champion_label, data.challenger_label))
    cells = np.bincount(4 * y + 2 * a + b, minlength=8)
    counts = rng.multinomial(len(y), cells / cells.sum(), size=draws)  # (draws, 8)
    cell = np.arange(8)
    outcome, champion, challenger = (cell >> 2) & 1, (cell >> 1) & 1, cell & 1
    positives = counts @ outcome

    def value(label: np.ndarray) -> np.ndarray:
        return CONFUSION_METRICS[metric](counts @ (outcome & label), counts @ label, positives)

    return value(challenger) - value(champion)


def _bootstrap_score_gains(data: EvaluationSet, metric: str, draws: int,
                           rng: np.random.Generator) -> np.ndarray:
    """Gains of `draws` customer resamples for the probability metrics (ROC AUC, Brier); NaN where a
    resample has one class only (ROC AUC undefined)."""
    n = len(data.outcome)
    y = np.asarray(data.outcome, dtype=int)
    out = []
    for start in range(0, draws, 200):  # chunks keep the memory at 200 x n
        index = rng.integers(0, n, size=(min(200, draws - start), n))
        yy = y[index]
        if metric == "roc_auc":
            champion = _auc_rows(yy, data.champion_probability[index])
            challenger = _auc_rows(yy, data.challenger_probability[index])
            out.append(challenger - champion)
        else:  # brier, lower is better
            champion = np.mean((data.champion_probability[index] - yy) ** 2, axis=1)
            challenger = np.mean((data.challenger_probability[index] - yy) ** 2, axis=1)
            out.append(champion - challenger)
    return np.concatenate(out)


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
    rate, margin = policy.false_promotion_rate, policy.min_margin
    test = paired_bootstrap(data, metric, null_gain=margin, rate=rate, draws=policy.bootstrap_draws,
                            seed=policy.bootstrap_seed)
    reasons = []
    if test is None:
        reasons.append(f"{metric} is undefined on these {rows} customers (e.g. ROC AUC with one class): "
                       "nothing to compare")
    elif not test.p_value <= rate:
        reasons.append(
            f"{metric}: challenger {challenger:.4f} vs champion {champion:.4f}, a gain of {test.gain:+.4f}, "
            f"not shown above the required margin {margin:+.4f} at a {rate:.0%} false-promotion rate "
            f"(paired bootstrap p = {test.p_value:.3f}; {1 - rate:.0%} lower bound of the gain "
            f"{test.gain_low:+.4f})")
    segments = _compare_segments(data, policy)
    for s in segments:
        if s.regression:
            reasons.append(f"segment {s.segment}={s.value} ({s.rows} customers): {metric} "
                           f"{s.challenger:.4f} vs {s.champion:.4f}, worse by more than "
                           f"{policy.segment_tolerance}")
    return GateDecision(
        promote=not reasons, metric=metric, rows=rows, champion=champion, challenger=challenger,
        reasons=reasons, segments=segments, test=TEST_NAME,
        p_value=None if test is None else test.p_value, gain=None if test is None else test.gain,
        gain_low=None if test is None else test.gain_low, gain_high=None if test is None else test.gain_high,
        null_gain=margin, false_promotion_rate=rate, bootstrap_draws=policy.bootstrap_draws,
        bootstrap_seed=policy.bootstrap_seed,
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
