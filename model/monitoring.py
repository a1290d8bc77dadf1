"""The statistics behind the monitoring: drift tests with a known false-alarm rate, which drift
moves the model's output, and performance estimated before outcomes arrive.

Everything here is plain numpy/pandas, the reference that the SQL functions of migration 0008
(what Grafana runs) are tested against, and the code that computes the reference tables stored
with each model version (`monitoring_reference`, called once by `model.train`).

**Drift test (per feature and window).** PSI between the window's bin shares and the training
reference's, over the baseline's bins (model/baseline.py: ten quantile bins per number, one per
category) plus one bin of its own for empty values. Under H0 (the window and the reference are
samples of one distribution), PSI is approximately (1/n + 1/N) * chi2(k - 1), n the window's rows,
N the reference's, k the bins the reference fills (the empty bin counts only where training had
empty values): Yurdakul & Naranjo (2020), "Statistical properties of the population stability
index", Journal of Risk Model Validation 14(4). A feature drifts when its PSI exceeds the critical
value (1/n + 1/N) * chi2.isf(alpha', k - 1), with alpha' the Sidak share of the family-wise rate
over the 19 features: alpha' = 1 - (1 - alpha)^(1/19). So alpha (a setting, default 1 %) is the
chance that a window drawn from the training distribution raises any drift alert, at any n.

**Small windows.** The chi-square law is a large-sample law, and the test reads its far tail (the
per-feature rate is 0.05 %): at 100 rows the PSI's tail is heavier than the law's (simulated per
feature from the reference shares, its 99.95 % quantile is up to 1.25 times the law's at 100
rows, 1.11 at 200, 1.05 at 400, 1.03 at 1,000) and the family rate measured 2 % instead of 1 %.
The critical value is therefore multiplied by (1 + SMALL_WINDOW_TERM / n), SMALL_WINDOW_TERM = 30:
an O(1/n) correction of the quantile, as an Edgeworth expansion gives, its constant taken from
that simulation with room to spare; it fades as windows grow (1.3 at 100 rows, 1.03 at 1,000,
1.003 at 10,000). bench/monitoring_power.py measures the family rate with it on fresh windows.

Shares empty on one side are floored at 1e-4 (the usual PSI convention, and what migration 0002
did). The chi-square law needs a few rows per bin: at 50 rows a 10 % bin is empty one time in 200,
and its floored term alone (0.1 x ln(1000) = 0.69) passes the critical value, so the simulation
(bench/bench_drift_alerts.py) finds a 17 % family false-alarm rate at 50 rows against <= 1 % from
100 rows up. Hence `MIN_ROWS = 100`: smaller windows say "too few rows" instead of a colour.

**Customers who repeat.** The law above needs independent rows, and customers are scored again
and again (every scheduled file, every webapp request): in a window where a customer counts three
times, their values weigh three times, the window's bin shares vary more than n independent rows
allow, and the test alarms far above its rate. So a window counts each customer once, by their
latest row in it (`latest_per_customer`; SQL migration 0010); a row without customer id counts as
a customer of its own. n is then the window's customers. When customers are an independent sample
of the population, their latest rows are n independent rows and the law holds again
(bench/monitoring_power.py measures both, repeated and fresh windows).

**Which drift matters.** The model is a logistic regression, so its logit is the intercept plus
one additive contribution per feature (one-hot weight of the category; weight x standardised
value for a number, the training median standing in for an empty one). The mean change of a
feature's contribution between the window and the reference (`logit_shift`) is exact, and the
shifts of all features add up to the change of the mean logit. Drifted features are ranked by it.

**Performance before outcomes (CBPE, as in NannyML).** Probabilities are calibrated by Platt
scaling (Platt 1999: a logistic regression of the outcome on the model's logit) fitted on the
out-of-fold training predictions, the ones that chose the threshold, so the 20 % holdout stays
unseen. With calibrated probabilities c_i and decisions d_i, the expected confusion matrix is
TP = sum c_i d_i, FP = sum (1 - c_i) d_i, FN = sum c_i (1 - d_i), TN = the rest, hence expected
precision, recall and F1. Assumption: no concept shift (P(churn | features) as in training); the
input distribution may change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from core.settings import DriftMonitoringSettings
from model.contract import FEATURES, FEATURES_BY_NAME, IDENTIFIER, SEGMENTS, Segment

_DEFAULTS = DriftMonitoringSettings.model_fields  # the settings' defaults, one home (core/settings.py)
FAMILY_FALSE_ALARM_RATE: float = _DEFAULTS["drift_false_alarm_rate"].default
"""Default chance that a window with no drift raises any feature's drift alert (DRIFT_FALSE_ALARM_RATE)."""
MIN_ROWS: int = _DEFAULTS["drift_min_rows"].default
"""Default smallest window (rows) given a drift verdict or an estimate (DRIFT_MIN_ROWS; see above)."""
EMPTY_SHARE_ALERT: float = _DEFAULTS["empty_share_alert"].default
"""Default share of empty values from which a feature 'arrives mostly empty' (EMPTY_SHARE_ALERT)."""
RARELY_EMPTY_SHARE: float = _DEFAULTS["rarely_empty_share"].default
"""Default: a feature empty in under 1 % of training rows is 'rarely empty' (RARELY_EMPTY_SHARE)."""
EPSILON = 1e-4
"""Floor of a share in the PSI sum (an empty bin on one side would make it infinite)."""
EMPTY_BIN = "(empty)"
"""The bin of empty values in every feature's PSI."""
ALL = "all"
"""The segment name meaning every row."""
TESTED_FEATURES = len(FEATURES)
"""The family of the Sidak correction: one drift test per feature and window."""
SMALL_WINDOW_TERM = 30.0
"""The critical value is multiplied by (1 + SMALL_WINDOW_TERM / n): small-window correction of the
chi-square law (see the module docstring; migration 0010 holds the same number)."""


def sidak_alpha(family_rate: float, tests: int = TESTED_FEATURES) -> float:
    """Per-test false-alarm rate so that `tests` independent tests together keep `family_rate`.

    Sidak (1967); for positively dependent tests (the add-on features move together) it is
    conservative. Raises ValueError outside 0 < family_rate < 1.
    """
    if not 0 < family_rate < 1:
        raise ValueError(f"the false-alarm rate must lie strictly between 0 and 1, got {family_rate}")
    return 1.0 - (1.0 - family_rate) ** (1.0 / tests)


def chi2_quantile(dof: int, family_rate: float, tests: int = TESTED_FEATURES) -> float:
    """The chi-square value exceeded with probability sidak_alpha(family_rate, tests)."""
    return float(chi2.isf(sidak_alpha(family_rate, tests), dof))


def psi_critical_value(
    *, window_rows: int, reference_rows: int, dof: int, family_rate: float = FAMILY_FALSE_ALARM_RATE,
    tests: int = TESTED_FEATURES,
) -> float:
    """PSI above which a feature has drifted: (1/n + 1/N) x chi2 quantile (Yurdakul & Naranjo 2020)
    x (1 + SMALL_WINDOW_TERM / n), the small-window correction (module docstring). n: the window's
    customers, N: the reference's rows."""
    if window_rows <= 0 or reference_rows <= 0 or dof < 1:
        raise ValueError(
            f"need rows on both sides and dof >= 1, got n={window_rows} N={reference_rows} dof={dof}"
        )
    return ((1.0 / window_rows + 1.0 / reference_rows) * chi2_quantile(dof, family_rate, tests)
            * small_window_factor(window_rows))


def small_window_factor(window_rows: int | np.ndarray) -> Any:
    """1 + SMALL_WINDOW_TERM / n: what the critical value of a window of n customers is multiplied by."""
    return 1.0 + SMALL_WINDOW_TERM / window_rows


def psi(window_shares: Mapping[str, float], reference_shares: Mapping[str, float]) -> float:
    """Population stability index of two share maps (bin -> share); shares floored at EPSILON."""
    total = 0.0
    for key in set(window_shares) | set(reference_shares):
        actual = max(window_shares.get(key, 0.0), EPSILON)
        expected = max(reference_shares.get(key, 0.0), EPSILON)
        total += (actual - expected) * math.log(actual / expected)
    return total


def bin_keys(values: pd.Series, stats: Mapping[str, Any]) -> np.ndarray:
    """Each value's PSI bin as SQL names it: quantile bin number, category as text, or EMPTY_BIN.

    Numbers: the bin of numpy searchsorted(inner edges, side="right") = PostgreSQL width_bucket.
    """
    empty = values.isna().to_numpy()
    if stats["kind"] == "numeric":
        inner = np.asarray(stats["bin_edges"][1:-1], dtype="float64")
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        keys = np.searchsorted(inner, np.nan_to_num(numbers), side="right").astype(str).astype(object)
    else:
        keys = values.map(str).to_numpy(dtype=object)
    keys[empty] = EMPTY_BIN
    return keys


def shares(keys: np.ndarray) -> dict[str, float]:
    """Share of each bin key among all keys (empty bins absent)."""
    found, counts = np.unique(keys.astype(str), return_counts=True)
    return {str(k): float(c) / len(keys) for k, c in zip(found, counts, strict=True)}


def degrees_of_freedom(reference_shares: Mapping[str, float]) -> int:
    """k - 1, k = the bins the reference fills (a segment can fix a feature: dof 0, not tested)."""
    return sum(share > 0 for share in reference_shares.values()) - 1


def latest_per_customer(
    frame: pd.DataFrame, *, customer: str = IDENTIFIER, created_at: str = "created_at", row_id: str = "id",
) -> pd.DataFrame:
    """Each customer's latest row of `frame` (by `created_at`, then `row_id`), in the frame's order;
    rows without customer id are all kept (each counts as a customer of its own).

    The window a drift test reads (the Python twin of migration 0010's `latest` rows). Raises
    KeyError when a named column is missing.
    """
    known = frame[customer].notna().to_numpy()
    rows = pd.DataFrame({"customer": frame[customer].to_numpy()[known],
                         "at": frame[created_at].to_numpy()[known], "id": frame[row_id].to_numpy()[known],
                         "position": np.flatnonzero(known)})
    latest = rows.sort_values(["at", "id"], kind="stable").drop_duplicates("customer", keep="last")
    keep = ~known
    keep[latest["position"].to_numpy()] = True
    return frame[keep]


def segment_mask(frame: pd.DataFrame, segment: Segment) -> np.ndarray:
    """Rows of `frame` in `segment`; a column the frame lacks (`source` in training) keeps every row."""
    if segment.column not in frame:
        return np.ones(len(frame), dtype=bool)
    column = frame[segment.column]
    if segment.value is not None:
        return (column.map(str) == segment.value).to_numpy()
    mask = column >= segment.lower
    if segment.upper is not None:
        mask &= column < segment.upper
    return mask.fillna(False).to_numpy(dtype=bool)


@dataclass(frozen=True)
class LogitWeights:
    """The logistic model as additive per-feature contributions to the logit.

    categorical: {feature: {category: coefficient}} (an unknown category contributes 0, as the
    one-hot encoder ignores it); numeric: {feature: (weight, center, fill)}: contribution =
    weight x (value - center), empty value -> fill (training median), weight = coef / scale.
    """

    intercept: float
    categorical: dict[str, dict[str, float]]
    numeric: dict[str, tuple[float, float, float]]

    @classmethod
    def of(cls, pipeline: Pipeline) -> LogitWeights:
        """Read the weights of model.train's pipeline (one-hot + median/standard scaling, logistic)."""
        preprocess, classifier = pipeline.named_steps["preprocess"], pipeline.named_steps["classifier"]
        coefficients = iter(classifier.coef_[0].tolist())
        categorical: dict[str, dict[str, float]] = {}
        numeric: dict[str, tuple[float, float, float]] = {}
        for name, transformer, columns in preprocess.transformers_:
            if name == "categorical":
                for column, categories in zip(columns, transformer.categories_, strict=True):
                    categorical[column] = {str(c): next(coefficients) for c in categories}
            elif name == "numeric":
                impute, scale = transformer.named_steps["impute"], transformer.named_steps["scale"]
                for i, column in enumerate(columns):
                    numeric[column] = (
                        next(coefficients) / float(scale.scale_[i]), float(scale.mean_[i]),
                        float(impute.statistics_[i]),
                    )
        return cls(float(classifier.intercept_[0]), categorical, numeric)

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Each row's contribution of each feature to the logit (rows x features)."""
        out = {}
        for feature, table in self.categorical.items():
            out[feature] = frame[feature].map(lambda v, t=table: t.get(str(v), 0.0)).astype("float64")
        for feature, (weight, center, fill) in self.numeric.items():
            out[feature] = weight * (frame[feature].astype("float64").fillna(fill) - center)
        return pd.DataFrame(out, index=frame.index)[[f.name for f in FEATURES]]

    def logit(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's logit of each row: intercept + the contributions."""
        return self.intercept + self.contributions(frame).sum(axis=1).to_numpy()


@dataclass(frozen=True)
class Calibration:
    """Platt scaling: calibrated = sigmoid(slope x logit(score) + intercept)."""

    slope: float
    intercept: float
    method: str = "platt"
    fitted_on: str = "out-of-fold training predictions"
    rows: int = 0

    @classmethod
    def fit(cls, outcomes: np.ndarray, scores: np.ndarray) -> Calibration:
        """Fit on outcomes (0/1) and the model's scores of the same rows (no regularisation)."""
        fit = LogisticRegression(C=np.inf).fit(_logit(scores).reshape(-1, 1), outcomes)
        return cls(float(fit.coef_[0][0]), float(fit.intercept_[0]), rows=len(outcomes))

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * _logit(scores) + self.intercept)))


def _logit(scores: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(scores, dtype="float64"), 1e-12, 1 - 1e-12)
    return np.log(clipped / (1 - clipped))


def _metrics(tp: float, fp: float, fn: float) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp > 0 else math.nan
    recall = tp / (tp + fn) if tp + fn > 0 else math.nan
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else math.nan
    return {"precision": precision, "recall": recall, "f1": f1}


def estimated_performance(
    scores: np.ndarray, decisions: np.ndarray, calibration: Calibration,
) -> dict[str, float]:
    """CBPE: expected TP/FP/FN/TN and precision/recall/F1 from calibrated probabilities.

    scores: the model's churn probabilities; decisions: its 0/1 labels (same length).
    """
    calibrated = calibration.apply(scores)
    positive = np.asarray(decisions) == 1
    tp, fp = float(calibrated[positive].sum()), float((1 - calibrated[positive]).sum())
    fn, tn = float(calibrated[~positive].sum()), float((1 - calibrated[~positive]).sum())
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, **_metrics(tp, fp, fn)}


def realized_performance(outcomes: np.ndarray, decisions: np.ndarray) -> dict[str, float]:
    """Precision/recall/F1 once outcomes are known (same definitions as the estimate)."""
    outcomes, decisions = np.asarray(outcomes) == 1, np.asarray(decisions) == 1
    return _metrics(float((outcomes & decisions).sum()), float((~outcomes & decisions).sum()),
                    float((outcomes & ~decisions).sum()))


@dataclass(frozen=True)
class DriftResult:
    """One feature's drift test on one window (the Python twin of SQL `drift_test`)."""

    feature: str
    window_rows: int
    psi: float | None  # None: no row in the window
    critical_value: float | None  # None: not tested (see status)
    status: str  # 'drift', 'no drift', 'too few rows', 'fixed by the segment'
    empty_share: float | None
    logit_shift: float | None

    @property
    def psi_ratio(self) -> float | None:
        return None if self.psi is None or not self.critical_value else self.psi / self.critical_value


def drift_tests(
    window: pd.DataFrame, reference: Mapping[str, Any], baseline: Mapping[str, Any],
    weights: LogitWeights, *, segment: str = ALL, family_rate: float = FAMILY_FALSE_ALARM_RATE,
    min_rows: int = MIN_ROWS,
) -> list[DriftResult]:
    """Test every feature of `window` (each customer's latest row, `latest_per_customer`, then the
    segment's rows selected) against the reference.

    reference: `monitoring_reference(...)` (as stored in the model metadata); baseline: the drift
    baseline of model/baseline.py (bin edges).
    """
    segment_ref = reference["segments"][segment]
    contributions = weights.contributions(window) if len(window) else None
    results = []
    for feature in FEATURES:
        ref = segment_ref["features"][feature.name]
        n, dof = len(window), degrees_of_freedom(ref["shares"])
        keys = bin_keys(window[feature.name], baseline[feature.name])
        if contributions is None:  # no row at all
            status = "fixed by the segment" if dof < 1 else "too few rows"
            results.append(DriftResult(feature.name, 0, None, None, status, None, None))
            continue
        value = psi(shares(keys), ref["shares"])
        shift = float(contributions[feature.name].mean()) - ref["mean_contribution"]
        empty_share = float(np.mean(keys == EMPTY_BIN))
        if dof < 1 or n < min_rows:
            status = "fixed by the segment" if dof < 1 else "too few rows"
            results.append(DriftResult(feature.name, n, value, None, status, empty_share, shift))
            continue
        critical = psi_critical_value(window_rows=n, reference_rows=segment_ref["rows"], dof=dof,
                                      family_rate=family_rate)
        results.append(DriftResult(feature.name, n, value, critical,
                                   "drift" if value > critical else "no drift", empty_share, shift))
    return results


def monitoring_reference(
    frame: pd.DataFrame, outcomes: np.ndarray, out_of_fold_scores: np.ndarray, pipeline: Pipeline,
    baseline: Mapping[str, Any],
) -> dict[str, Any]:
    """What the monitoring compares serving data with, stored in the model's metadata.

    frame: the training features (rows x FEATURE_NAMES); outcomes: 0/1 churn of those rows;
    out_of_fold_scores: cross-validated scores of those rows (for the calibration); pipeline:
    the fitted model; baseline: `compute_baseline(frame)`. Per segment (and `all`): rows, churn
    rate, mean logit, and per feature its bin shares (empty bin included), empty share and mean
    logit contribution. Plus the logit weights and the calibration.
    """
    weights = LogitWeights.of(pipeline)
    contributions = weights.contributions(frame)
    logits = weights.intercept + contributions.sum(axis=1).to_numpy()
    segments: dict[str, Any] = {}
    for name, mask in [(ALL, np.ones(len(frame), dtype=bool))] + [
        (s.name, segment_mask(frame, s)) for s in SEGMENTS
    ]:
        part = frame[mask]
        segments[name] = {
            "rows": int(mask.sum()),
            "churn_rate": float(np.mean(outcomes[mask])),
            "mean_logit": float(np.mean(logits[mask])),
            "features": {
                f.name: {
                    "shares": _reference_shares(part[f.name], baseline[f.name]),
                    "empty_share": float(part[f.name].isna().mean()),
                    "mean_contribution": float(contributions.loc[mask, f.name].mean()),
                }
                for f in FEATURES
            },
        }
    return {
        "segments": segments,
        "logit_weights": asdict(weights),
        "calibration": asdict(Calibration.fit(outcomes, out_of_fold_scores)),
    }


def _reference_shares(values: pd.Series, stats: Mapping[str, Any]) -> dict[str, float]:
    """Every baseline bin (zero share included) and the empty bin, as shares of all rows."""
    if stats["kind"] == "numeric":
        every = [str(i) for i in range(len(stats["bin_edges"]) - 1)]
    else:
        every = [str(v) for v in FEATURES_BY_NAME[values.name].allowed or ()]
    found = shares(bin_keys(values, stats))
    return {key: found.get(key, 0.0) for key in [*every, EMPTY_BIN]}


def simulate_null_psi(
    population: pd.DataFrame, *, window_rows: int, reference_rows: int, replicates: int,
    family_rate: float = FAMILY_FALSE_ALARM_RATE, seed: int = 0,
) -> dict[str, float]:
    """Check the chi-square law of PSI by simulation: both samples from one population (H0).

    Each replicate draws a reference of `reference_rows` and a window of `window_rows` rows from
    `population` (with replacement), rebuilds the baseline on the reference as training does and
    tests every feature. Returns `mean_ratio`: mean PSI over its chi-square mean (1/n + 1/N)(k - 1),
    averaged over features and replicates (1 when the law holds), and `family_false_alarm_rate`:
    the share of windows where any feature passed its critical value (should not exceed
    `family_rate`).
    """
    from model.baseline import compute_baseline

    rng = np.random.default_rng(seed)
    ratios: list[float] = []
    alarms = 0
    for _ in range(replicates):
        reference = population.iloc[rng.integers(0, len(population), reference_rows)]
        window = population.iloc[rng.integers(0, len(population), window_rows)]
        baseline = compute_baseline(reference)
        alarm = False
        for feature in FEATURES:
            ref_shares = _reference_shares(reference[feature.name], baseline[feature.name])
            dof = degrees_of_freedom(ref_shares)
            if dof < 1:
                continue
            value = psi(shares(bin_keys(window[feature.name], baseline[feature.name])), ref_shares)
            scale = 1.0 / window_rows + 1.0 / reference_rows
            ratios.append(value / (scale * dof))
            alarm |= value > psi_critical_value(window_rows=window_rows, reference_rows=reference_rows,
                                                dof=dof, family_rate=family_rate)
        alarms += alarm
    return {"mean_ratio": float(np.mean(ratios)), "family_false_alarm_rate": alarms / replicates}
