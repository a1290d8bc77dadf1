"""Measure what the monitoring promises: false alarms, detection delays, power, CBPE error.

    python -m bench.monitoring_power            # about 15 minutes on two shared cores
    python -m bench.monitoring_power --quick    # fewer replicates, for a look (figures noisier)

Statistics, not speed, so `make bench` does not run it. Sections, each printing its figures:

1. The chi-square law of PSI, by simulation against the training data: reference (5,634 rows)
   and window drawn from the dataset, baseline rebuilt on the reference; mean PSI over its
   chi-square mean, and the family false-alarm rate per window (goal <= 1 %).
1b. False alarms of fresh and of repeated windows, many windows (the bin edges of the stored
   baseline, fixed; everything else drawn per replicate):
   - fresh: reference (5,634 rows) and window (100 / 1,000 / 10,000 rows) independent draws from
     the dataset (the population), every row its own customer; also without the small-window
     correction of the critical value (the chi-square law alone);
   - repeated: the dataset split at random into a reference (5,634) and a held-out set (1,409),
     the window's rows drawn from the held-out set with replacement (customers scored again and
     again), counted every row (the test before migration 0010) and each customer once (now).
   Goal: <= 1 % (DRIFT_FALSE_ALARM_RATE) in every cell counted as the drift test counts.
2. A simulated week of held-out rows (the 20 % holdout model.train never fits on), 40 rows a
   minute, no drift: the drift rule evaluated every minute on its 30-minute window, the window's
   rows counted every row (before) and each customer once (now); alerts = times it starts firing
   (goal <= 1 a week).
3. The demo history (scripts/seed_demo_history.py) in a scratch database: every alert rule
   evaluated as Grafana does every 15 s from the start of its episode: delay to the first firing
   (goal for drift: within 10 minutes), and the CBPE estimate around the drift hour's start.
4. Power: the smallest shift detected in 80 % of windows at 200 / 1,000 / 10,000 rows, windows
   drawn from the training rows (the reference itself, so H0 holds exactly at zero shift).
5. CBPE on labelled replays of held-out rows with covariate shift: estimated vs realized F1
   on windows of 500 and 2,000 rows (goal: within 0.03).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import joblib
import numpy as np
import pandas as pd
import psycopg
from sklearn.model_selection import train_test_split

from bench._common import libpq_url, scratch_database
from db.manage import DEFAULT_METADATA, load_baseline
from db.session import session_scope
from model.contract import FEATURE_NAMES, FEATURES, IDENTIFIER, POSITIVE_LABEL, TARGET
from model.data import load_dataset
from model.files import ARTIFACTS_DIR, HOLDOUT_SHARE, MODEL_FILE, SEED
from model.monitoring import (
    ALL,
    EMPTY_BIN,
    EPSILON,
    FAMILY_FALSE_ALARM_RATE,
    MIN_ROWS,
    Calibration,
    bin_keys,
    chi2_quantile,
    degrees_of_freedom,
    estimated_performance,
    realized_performance,
    simulate_null_psi,
    small_window_factor,
)
from scripts.seed_demo_history import DemoTimeline, _clean, _drifted, seed_demo_history
from tests.grafana.conftest import alert_rules
from tests.grafana.test_queries import evaluate_rule

RATE_PER_MINUTE = 40
WEEK_MINUTES = 7 * 24 * 60
ALERT_WINDOW_MINUTES = 30
DRIFT_PENDING_MINUTES = next(
    int(r["for"].removesuffix("m")) for r in alert_rules() if r["uid"] == "churn-feature-psi")


class Encoder:
    """Rows -> bin indices per feature, and vectorised PSI/critical values against the reference."""

    def __init__(self, metadata: dict[str, Any], segment: str = ALL) -> None:
        self.baseline = metadata["baseline"]
        reference = metadata["monitoring"]["segments"][segment]
        self.reference_rows = reference["rows"]
        self.keys = {f.name: list(reference["features"][f.name]["shares"]) for f in FEATURES}
        self.width = max(len(k) for k in self.keys.values())
        self.shares = np.zeros((len(FEATURES), self.width))
        self.dof = np.zeros(len(FEATURES), dtype=int)
        for i, f in enumerate(FEATURES):
            ref = reference["features"][f.name]["shares"]
            self.shares[i, : len(ref)] = list(ref.values())
            self.dof[i] = degrees_of_freedom(ref)
        rate = FAMILY_FALSE_ALARM_RATE
        self.chi2 = np.array([chi2_quantile(d, rate) if d >= 1 else np.inf for d in self.dof])

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, features) matrix of bin indices."""
        columns = []
        for f in FEATURES:
            index = {key: i for i, key in enumerate(self.keys[f.name])}
            columns.append([index[k] for k in bin_keys(frame[f.name], self.baseline[f.name])])
        return np.asarray(columns, dtype=np.int16).T

    def counts(self, codes: np.ndarray) -> np.ndarray:
        """codes (windows, rows, features) -> bin counts (windows, features, bins)."""
        windows, _, features = codes.shape
        cells = np.arange(windows)[:, None, None] * features + np.arange(features)[None, None, :]
        offsets = cells * self.width
        flat = np.bincount((codes + offsets).ravel(), minlength=windows * features * self.width)
        return flat.reshape(windows, features, self.width)

    def ratios(self, counts: np.ndarray) -> np.ndarray:
        """PSI / critical value per (window, feature) from bin counts (windows, features, bins)."""
        return psi_ratios(counts, self.shares, self.reference_rows, self.chi2)

    def reference_of(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shares (features, bins) and chi-square quantiles (features,) of a reference drawn as `codes`
        (rows, features), over the stored baseline's bins; dof = the bins it fills - 1."""
        shares = self.counts(codes[None])[0] / len(codes)
        dof = (shares > 0).sum(axis=1) - 1
        rate = FAMILY_FALSE_ALARM_RATE
        return shares, np.array([chi2_quantile(int(d), rate) if d >= 1 else np.inf for d in dof])


def psi_ratios(counts: np.ndarray, reference_shares: np.ndarray, reference_rows: int,
               chi2: np.ndarray) -> np.ndarray:
    """PSI / critical value per (window, feature): counts (windows, features, bins), the reference's
    shares (features, bins) and rows, chi-square quantiles (features,) (inf: not tested)."""
    n = counts[:, :1, :].sum(axis=2, keepdims=True).astype(float)  # (windows, 1, 1): every feature has n
    actual = np.maximum(counts / n, EPSILON)
    expected = np.maximum(reference_shares, EPSILON)[None]
    psi = ((actual - expected) * np.log(actual / expected)).sum(axis=2)
    critical = (1.0 / n[:, :, 0] + 1.0 / reference_rows) * chi2[None] * small_window_factor(n[:, :, 0])
    return psi / critical


def split_dataset() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """model.train's split: (training features, held-out features, held-out outcomes)."""
    frame = load_dataset()
    y = (frame[TARGET] == POSITIVE_LABEL).astype(int).to_numpy()
    X_train, X_hold, _, y_hold = train_test_split(
        frame[list(FEATURE_NAMES)], y, test_size=HOLDOUT_SHARE, stratify=y, random_state=SEED)
    return X_train, X_hold, y_hold


def chi_square_law(population: pd.DataFrame, replicates: int) -> None:
    print("\n1. chi-square law of PSI under H0 (reference 5,634 rows and window from the dataset, "
          f"{replicates} replicates each)")
    print(f"   {'window rows':>11} {'mean PSI / chi2 mean':>21} {'family false alarms':>20}")
    for n in (50, 100, 1000, 10_000):
        result = simulate_null_psi(population, window_rows=n, reference_rows=5634, replicates=replicates,
                                   seed=n)
        print(f"   {n:>11,} {result['mean_ratio']:>21.3f} {result['family_false_alarm_rate']:>19.1%}"
              f"{'   (< MIN_ROWS: no verdict)' if n < MIN_ROWS else ''}", flush=True)


def _wilson(alarms: int, windows: int) -> str:
    from model.performance import wilson_interval

    interval = wilson_interval(alarms, windows)
    return f"{alarms / windows:6.2%} [{interval.low:.2%}, {interval.high:.2%}]"


def fresh_and_repeated(encoder: Encoder, population: pd.DataFrame, windows: dict[int, int],
                       references: int = 100) -> None:
    """Section 1b: family false alarms of fresh windows and of windows of repeated customers."""
    codes = encoder.encode(population)
    rng = np.random.default_rng(11)
    reference_rows, held_out_rows = 5634, len(codes) - 5634
    print(f"\n1b. false alarms per window under H0 (stored bin edges; {references} references per size, "
          "windows spread over them; [Wilson 95 % interval]; goal <= "
          f"{FAMILY_FALSE_ALARM_RATE:.0%})")
    print(f"   {'window rows':>11} {'fresh':>22} {'fresh, no small-window term':>28} "
          f"{'repeated, every row':>26} {'repeated, each customer once':>30}"
          f" {'customers':>10}")
    for n, count in windows.items():
        per_reference = max(1, count // references)
        fresh = uncorrected = every_row = once = 0
        customers = []
        for _ in range(references):
            # fresh: the reference and the windows independent draws from the population
            ref_shares, chi2 = encoder.reference_of(codes[rng.integers(0, len(codes), reference_rows)])
            drawn = codes[rng.integers(0, len(codes), (per_reference, n))]
            ratios = psi_ratios(encoder.counts(drawn), ref_shares, reference_rows, chi2)
            fresh += int((ratios > 1).any(axis=1).sum())
            uncorrected += int((ratios * small_window_factor(n) > 1).any(axis=1).sum())  # the law alone
            # repeated: a random split into reference and held-out set; rows drawn from the held-out set
            order = rng.permutation(len(codes))
            ref_shares, chi2 = encoder.reference_of(codes[order[:reference_rows]])
            held_out = order[reference_rows:]
            rows = held_out[rng.integers(0, held_out_rows, (per_reference, n))]
            every_row += int((psi_ratios(encoder.counts(codes[rows]), ref_shares, reference_rows, chi2) > 1)
                             .any(axis=1).sum())
            for window in rows:
                distinct = np.unique(window)
                customers.append(len(distinct))
                ratio = psi_ratios(encoder.counts(codes[distinct][None]), ref_shares, reference_rows, chi2)
                once += int((ratio > 1).any())
        total = per_reference * references
        print(f"   {n:>11,} {_wilson(fresh, total):>22} {_wilson(uncorrected, total):>28} "
              f"{_wilson(every_row, total):>26} "
              f"{_wilson(once, total):>30}"
              f" {np.mean(customers):>10,.0f}", flush=True)


def count_alerts(condition: np.ndarray, pending: int = 0) -> int:
    """Times a rule starts firing over consecutive one-minute evaluations of its condition.

    Grafana's `for: <pending> m`: the condition must hold at `pending` + 1 evaluations in a row.
    """
    starts = np.flatnonzero(np.diff(np.concatenate([[0], condition.astype(int), [0]])) == 1)
    ends = np.flatnonzero(np.diff(np.concatenate([[0], condition.astype(int), [0]])) == -1)
    return int(np.sum(ends - starts > pending))


def alerts_per_week(
    encoder: Encoder, rows: pd.DataFrame, weeks: int, seed: int = 1, once: bool = True,
) -> tuple[list[int], list[int], float]:
    """Replay `rows` (customers drawn with replacement) at RATE_PER_MINUTE; the drift rule every minute.

    once: each window counts each customer once (the drift test since migration 0010); else
    every row (before). Returns alerts per week without and with the rule's pending period, and
    the share of evaluations whose condition held."""
    codes = encoder.encode(rows)
    rng = np.random.default_rng(seed)
    alerts, pending_alerts, firing_share = [], [], []
    for _ in range(weeks):
        drawn = rng.integers(0, len(codes), (WEEK_MINUTES, RATE_PER_MINUTE))
        if once:
            firing = np.empty(WEEK_MINUTES - ALERT_WINDOW_MINUTES + 1, dtype=bool)
            for end in range(ALERT_WINDOW_MINUTES, WEEK_MINUTES + 1):
                customers = np.unique(drawn[end - ALERT_WINDOW_MINUTES:end])
                counts = encoder.counts(codes[customers][None])
                firing[end - ALERT_WINDOW_MINUTES] = bool((encoder.ratios(counts) > 1).any())
        else:
            rolling = np.cumsum(encoder.counts(codes[drawn]), axis=0)  # (minutes, features, bins)
            rolling[ALERT_WINDOW_MINUTES:] = rolling[ALERT_WINDOW_MINUTES:] - rolling[:-ALERT_WINDOW_MINUTES]
            firing = np.asarray((encoder.ratios(rolling[ALERT_WINDOW_MINUTES - 1:]) > 1).any(axis=1))
        alerts.append(count_alerts(firing))
        pending_alerts.append(count_alerts(firing, DRIFT_PENDING_MINUTES))
        firing_share.append(float(firing.mean()))
    return alerts, pending_alerts, float(np.mean(firing_share))


def week_of_held_out_rows(
    encoder: Encoder, training: pd.DataFrame, held_out: pd.DataFrame, weeks: int,
) -> None:
    print(f"\n2. simulated weeks with no drift ({RATE_PER_MINUTE} rows a minute, "
          f"{ALERT_WINDOW_MINUTES}-minute window evaluated every minute, {weeks} weeks each); "
          "alerts = times the rule starts firing")
    sources = {
        "held-out rows (1,409, reused)": held_out,
        "the whole dataset (7,043)": pd.concat([training, held_out]),
        "the training rows (the reference)": training,
    }
    for name, rows in sources.items():
        for once in (False, True):
            alerts, pending, share = alerts_per_week(encoder, rows, weeks, once=once)
            counted = "each customer once" if once else "every row (before)"
            print(f"   replay of {name:<36} {counted:<19} condition true at {share:.2%} of evaluations; "
                  f"alerts per week: {np.mean(alerts):.2f} with for: 0s, {np.mean(pending):.2f} "
                  f"(max {max(pending)}) with the rule's for: {DRIFT_PENDING_MINUTES}m", flush=True)


def episode_starts(timeline: DemoTimeline) -> dict[str, datetime]:
    return {
        "churn-all-rows-invalid": timeline.bad_data[0], "churn-no-ingestion": timeline.outage[0],
        "churn-single-label": timeline.drift[0], "churn-rate-far-from-training": timeline.drift[0],
        "churn-feature-psi": timeline.drift[0], "churn-feature-empty": timeline.empty_values[0],
    }


def parse_for(text: str) -> timedelta:
    return timedelta(minutes=int(text[:-1])) if text.endswith("m") else timedelta(seconds=int(text[:-1] or 0))


def demo_delays_and_estimate() -> None:
    with scratch_database("_power") as url:
        load_baseline()
        end = datetime.now().astimezone().replace(second=0, microsecond=0)
        with session_scope() as session:
            seed_demo_history(session=session, hours=6, end=end)
        timeline = DemoTimeline.ending_at(end, 6)
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            print("\n3. demo history: delay from the start of each episode to the first firing "
                  "(evaluated every 15 s)")
            for rule in alert_rules():
                start = episode_starts(timeline).get(rule["uid"])
                if start is None:  # e.g. the realized-F1 rule: the demo's episodes have no outcomes
                    print(f"   {rule['uid']:<30} no episode of the demo history for it")
                    continue
                moments = (start + timedelta(seconds=step * 15) for step in range(4 * 30))
                delay = next(((at - start).total_seconds() for at in moments
                              if any(evaluate_rule(rule, conn, at).values())), None)
                pending = parse_for(rule["for"])
                shown = "not within 30 min" if delay is None else f"{delay / 60:.2f} min"
                print(f"   {rule['uid']:<30} condition true after {shown}"
                      f"{f' + {pending.seconds // 60} min pending (for:)' if pending else ''}")
            print("   estimated performance (CBPE, no labels) in 5-minute windows around the drift start:")
            for minutes in range(-15, 20, 5):
                at = timeline.drift[0] + timedelta(minutes=minutes)
                row = conn.execute("SELECT estimated_f1, estimated_precision, estimated_recall, "
                                   "predicted_positive_rate, window_rows FROM estimated_performance(%s, %s)",
                                   (at, at + timedelta(minutes=5))).fetchone()
                assert row is not None  # an aggregate always answers one row
                values = ", ".join("-" if v is None else f"{v:.3f}" for v in row[:4])
                print(f"   drift start {minutes:+3d} min: F1, precision, recall, positive rate = {values} "
                      f"({row[4]} rows)")


def smallest_detected(
    encoder: Encoder, make_window: Callable[[float, int, np.random.Generator], np.ndarray],
    grid: list[float], n: int, replicates: int,
) -> float | None:
    rng = np.random.default_rng(n)
    for size in grid:
        batch = max(1, min(replicates, 2_000_000 // n))
        detected = 0
        for start in range(0, replicates, batch):
            codes = np.stack([make_window(size, n, rng) for _ in range(min(batch, replicates - start))])
            detected += int((encoder.ratios(encoder.counts(codes)) > 1).any(axis=1).sum())
        if detected / replicates >= 0.8:
            return size
    return None


def power(encoder: Encoder, training: pd.DataFrame, replicates: int) -> None:
    base = encoder.encode(training)
    rng = random.Random(3)
    fiber = training[training["internet_service"] == "Fiber optic"].to_dict("records")
    newcomers = encoder.encode(pd.DataFrame(
        [_drifted(_clean({**r, IDENTIFIER: None}), rng) for r in fiber])[list(FEATURE_NAMES)])
    charges = FEATURE_NAMES.index("monthly_charges")
    charges_values = training["monthly_charges"].to_numpy(dtype="float64")
    inner_charges = np.asarray(encoder.baseline["monthly_charges"]["bin_edges"][1:-1])
    std = float(training["monthly_charges"].std())
    month_to_month = (training["contract"] == "Month-to-month").to_numpy()
    share = month_to_month.mean()

    def mixture(size: float, n: int, g: np.random.Generator) -> np.ndarray:
        drifted = g.random(n) < size
        return np.where(drifted[:, None], newcomers[g.integers(0, len(newcomers), n)],
                        base[g.integers(0, len(base), n)])

    def charges_shift(size: float, n: int, g: np.random.Generator) -> np.ndarray:
        positions = g.integers(0, len(training), n)
        out = base[positions].copy()  # monthly_charges is never empty: its bin index is the quantile bin
        out[:, charges] = np.searchsorted(inner_charges, charges_values[positions] + size * std, side="right")
        return out

    def contract_tilt(size: float, n: int, g: np.random.Generator) -> np.ndarray:
        target = min(share + size, 1.0)
        pick_m2m = g.random(n) < target
        m2m, other = np.flatnonzero(month_to_month), np.flatnonzero(~month_to_month)
        rows = np.where(pick_m2m, m2m[g.integers(0, len(m2m), n)], other[g.integers(0, len(other), n)])
        return base[rows]

    shifts = [
        ("share of the demo promotion's newcomers", mixture,
         [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5], "{:.1%}"),
        ("monthly_charges moved by x training std", charges_shift,
         [0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75], "{:.3f} std"),
        ("month-to-month share up by", contract_tilt,
         [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3], "{:+.1%} points"),
    ]
    print(f"\n4. power: smallest shift detected in 80 % of windows (rows drawn from training, {replicates} "
          "windows per size; any feature's PSI above its critical value, 1 % family rate)")
    print(f"   {'shift':<42} {'200 rows':>16} {'1,000 rows':>16} {'10,000 rows':>16}")
    for name, make, grid, form in shifts:
        found = [smallest_detected(encoder, make, grid, n, replicates) for n in (200, 1000, 10_000)]
        cells = [f"{'> ' + form.format(grid[-1]) if v is None else form.format(v):>16}" for v in found]
        print(f"   {name:<42} {' '.join(cells)}", flush=True)


def cbpe_replays(
    held_out: pd.DataFrame, outcomes: np.ndarray, metadata: dict[str, Any], windows: int,
) -> None:
    pipeline = joblib.load(ARTIFACTS_DIR / MODEL_FILE)
    scores = pipeline.predict_proba(held_out)[:, 1]
    decisions = (scores >= metadata["threshold"]).astype(int)
    calibration = Calibration(**metadata["monitoring"]["calibration"])
    fiber, tenure = (held_out["internet_service"] == "Fiber optic").to_numpy(), held_out["tenure"].to_numpy()
    contract = held_out["contract"].to_numpy()
    scenarios = {
        "no shift": np.ones(len(held_out)),
        "3x more month-to-month": np.where(contract == "Month-to-month", 3.0, 1.0),
        "4x more new fiber customers": np.where(fiber & (tenure < 12), 4.0, 1.0),
        "4x more two-year contracts": np.where(contract == "Two year", 4.0, 1.0),
        "fiber 3x rarer": np.where(fiber, 1 / 3, 1.0),
    }
    rng = np.random.default_rng(5)
    print(f"\n5. CBPE on labelled replays of held-out rows with covariate shift ({windows} windows each; "
          "error = estimated - realized F1)")
    print(f"   {'scenario':<28} {'rows':>6} {'realized F1':>11} {'mean error':>11} {'mean |error|':>13} "
          f"{'within 0.03':>12} {'|mean est - replay F1|':>23}")
    for name, weights in scenarios.items():
        p = weights / weights.sum()
        replay_f1 = _weighted_f1(outcomes, decisions, p)
        for n in (500, 2000):
            errors, estimates, realized = [], [], []
            for _ in range(windows):
                rows = rng.choice(len(held_out), size=n, p=p)
                estimate = estimated_performance(scores[rows], decisions[rows], calibration)["f1"]
                truth = realized_performance(outcomes[rows], decisions[rows])["f1"]
                errors.append(estimate - truth)
                estimates.append(estimate)
                realized.append(truth)
            errors_arr = np.asarray(errors)
            print(f"   {name:<28} {n:>6,} {np.mean(realized):>11.3f} {errors_arr.mean():>+11.3f} "
                  f"{np.abs(errors_arr).mean():>13.3f} {np.mean(np.abs(errors_arr) <= 0.03):>12.0%} "
                  f"{abs(np.mean(estimates) - replay_f1):>23.3f}", flush=True)


def _weighted_f1(outcomes: np.ndarray, decisions: np.ndarray, weights: np.ndarray) -> float:
    tp = float(np.sum(weights * (outcomes == 1) * (decisions == 1)))
    fp = float(np.sum(weights * (outcomes == 0) * (decisions == 1)))
    fn = float(np.sum(weights * (outcomes == 1) * (decisions == 0)))
    return 2 * tp / (2 * tp + fp + fn)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer replicates (noisier figures)")
    parser.add_argument("--sections", default="1b2345", help="which sections to run, e.g. b2 (b = 1b)")
    args = parser.parse_args(argv)
    metadata = json.loads(DEFAULT_METADATA.read_text())
    encoder = Encoder(metadata)
    training, held_out, outcomes = split_dataset()
    print(f"model {metadata['model_version']}: {len(training):,} training rows, {len(held_out):,} held out; "
          f"family false-alarm rate 1 %, minimum {MIN_ROWS} rows; empty bin '{EMPTY_BIN}'")
    if "1" in args.sections:
        chi_square_law(pd.concat([training, held_out]), replicates=100 if args.quick else 300)
    if "b" in args.sections:
        sizes = ({100: 2000, 1000: 1000, 10_000: 300} if args.quick
                 else {100: 20_000, 1000: 10_000, 10_000: 3000})
        fresh_and_repeated(encoder, pd.concat([training, held_out]), sizes)
    if "2" in args.sections:
        week_of_held_out_rows(encoder, training, held_out, weeks=2 if args.quick else 10)
    if "3" in args.sections:
        demo_delays_and_estimate()
    if "4" in args.sections:
        power(encoder, training, replicates=100 if args.quick else 200)
    if "5" in args.sections:
        cbpe_replays(held_out, outcomes, metadata, windows=100 if args.quick else 400)


if __name__ == "__main__":
    main()
