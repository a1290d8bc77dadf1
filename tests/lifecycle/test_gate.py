"""The promotion gate as a table of cases: it promotes a better challenger only, and says why not;
its paired bootstrap test keeps the stated false-promotion rate (simulated on real models)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from bench.gate_power import Population, Scored, recipe_models, simulate
from core.settings import LifecycleSettings
from model.gate import TEST_NAME, EvaluationSet, GatePolicy, evaluate_gate, paired_bootstrap, tenure_band

POLICY = GatePolicy(metric="f1", min_rows=200, min_margin=0.02, segment_tolerance=0.05, min_segment_rows=30)


def _customers(n: int = 600, seed: int = 7) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    contracts = rng.choice(["Month-to-month", "One year", "Two year"], n)
    return [
        {"outcome": int(rng.random() < 0.4), "contract": str(c),
         "internet_service": str(rng.choice(["DSL", "Fiber optic", "No"])),
         "tenure": int(rng.integers(0, 72))}
        for c in contracts
    ]


def _scored(rows: list[dict[str, Any]], champion_accuracy: float, challenger_accuracy: float,
            challenger_in: dict[str, float] | None = None, seed: int = 1) -> EvaluationSet:
    """Each model gets a customer right with the given probability (per contract for the challenger)."""
    rng = np.random.default_rng(seed)
    scored = []
    for row in rows:
        accuracy = (challenger_in or {}).get(row["contract"], challenger_accuracy)
        champion = row["outcome"] if rng.random() < champion_accuracy else 1 - row["outcome"]
        challenger = row["outcome"] if rng.random() < accuracy else 1 - row["outcome"]
        scored.append({**row, "champion_label": champion, "champion_probability": 0.2 + 0.6 * champion,
                       "challenger_label": challenger, "challenger_probability": 0.2 + 0.6 * challenger})
    return EvaluationSet.from_rows(scored)


def test_a_better_challenger_is_promoted() -> None:
    decision = evaluate_gate(_scored(_customers(), 0.7, 0.85), POLICY)
    assert decision.promote and decision.reasons == []
    assert decision.challenger - decision.champion >= 0.02  # type: ignore[operator]
    assert {s.segment for s in decision.segments} == {"contract", "internet_service", "tenure_band"}


def test_a_worse_challenger_is_refused_with_the_metric_named() -> None:
    decision = evaluate_gate(_scored(_customers(), 0.85, 0.7), POLICY)
    assert not decision.promote and decision.enough_rows
    assert decision.reasons[0].startswith("f1: challenger ")
    assert "not shown above the required margin +0.0200 at a 5% false-promotion rate" in decision.reasons[0]
    assert decision.p_value is not None and decision.p_value > 0.5
    assert decision.gain is not None and decision.gain < 0
    assert f"a gain of {decision.gain:+.4f}" in decision.reasons[0]


def test_a_tie_within_the_margin_keeps_the_champion() -> None:
    data = _scored(_customers(), 0.8, 0.8, seed=1)
    same = EvaluationSet(data.outcome, data.champion_label, data.champion_probability,
                         data.champion_label, data.champion_probability, data.segments)
    decision = evaluate_gate(same, POLICY)
    assert not decision.promote and "a gain of +0.0000" in decision.reasons[0]
    assert decision.p_value == 1.0 and decision.gain_low == decision.gain_high == 0.0


def test_a_segment_regression_refuses_an_overall_better_challenger() -> None:
    # much better overall, but wrong on two-year contracts
    data = _scored(_customers(), 0.7, 0.97, challenger_in={"Two year": 0.5})
    decision = evaluate_gate(data, POLICY)
    assert decision.challenger > decision.champion + 0.02  # type: ignore[operator]
    assert not decision.promote
    assert len(decision.reasons) == 1 and decision.reasons[0].startswith("segment contract=Two year (")
    regressed = [s for s in decision.segments if s.regression]
    assert [(s.segment, s.value) for s in regressed] == [("contract", "Two year")]


def test_too_few_labelled_customers_means_wait_not_reject() -> None:
    decision = evaluate_gate(_scored(_customers(150), 0.5, 0.99), POLICY)
    assert not decision.promote and not decision.enough_rows
    assert decision.reasons == ["only 150 labelled customers scored by both models; the gate needs 200 "
                                "(GATE_MIN_ROWS)"]


def test_small_segments_are_not_judged() -> None:
    policy = GatePolicy(min_rows=10, min_margin=0.0, min_segment_rows=1000)
    decision = evaluate_gate(_scored(_customers(), 0.7, 0.9), policy)
    assert decision.promote and decision.segments == []


def test_brier_is_lower_is_better() -> None:
    decision = evaluate_gate(_scored(_customers(), 0.7, 0.9), GatePolicy(metric="brier", min_margin=0.01))
    assert decision.promote and decision.challenger < decision.champion  # type: ignore[operator]


@pytest.mark.parametrize(("tenure", "band"), [(0, "0-12 months"), (12, "0-12 months"), (13, "13-24 months"),
                                              (48, "25-48 months"), (49, "49+ months"), (120, "49+ months")])
def test_tenure_bands(tenure: int, band: str) -> None:
    assert tenure_band(tenure) == band


def test_unknown_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown gate metric 'accuracy'"):
        GatePolicy(metric="accuracy")


def test_the_decision_records_the_test_for_storage() -> None:
    decision = evaluate_gate(_scored(_customers(), 0.7, 0.85), POLICY)
    details = json.loads(json.dumps(decision.as_dict()))  # as the lifecycle stores and tags it
    assert details["test"] == TEST_NAME == "paired bootstrap, one-sided"
    assert details["p_value"] == decision.p_value and 0 < decision.p_value <= 0.05  # type: ignore[operator]
    assert details["null_gain"] == 0.02 and details["false_promotion_rate"] == 0.05
    assert details["bootstrap_draws"] == 2000 and isinstance(details["bootstrap_seed"], int)
    assert details["gain"] == pytest.approx(decision.challenger - decision.champion)  # type: ignore[operator]
    # the one-sided 95 % lower bound lies above the margin, and below the observed gain
    assert 0.02 < details["gain_low"] < details["gain"] < details["gain_high"]


def test_waiting_for_labels_records_no_test() -> None:
    decision = evaluate_gate(_scored(_customers(150), 0.5, 0.99), POLICY)
    assert decision.test is None and decision.p_value is None and decision.gain_low is None


def test_a_small_gain_on_few_customers_is_not_promoted_by_noise() -> None:
    """The point estimate passes the margin (the old gate promoted), the test cannot tell it from chance."""
    data = _scored(_customers(250, seed=3), 0.78, 0.80, seed=5)
    decision = evaluate_gate(data, GatePolicy(min_rows=200, min_margin=0.01, min_segment_rows=1000))
    assert decision.gain is not None and decision.gain > 0.01
    assert not decision.promote and decision.p_value > 0.05  # type: ignore[operator]
    assert decision.gain_low is not None and decision.gain_low < 0.01


def test_the_same_customers_give_the_same_decision() -> None:
    data = _scored(_customers(), 0.78, 0.82)
    first, second = evaluate_gate(data, POLICY), evaluate_gate(data, POLICY)
    assert first.as_dict() == second.as_dict()


def test_the_cell_bootstrap_is_the_customer_bootstrap() -> None:
    """F1 resampled through the 8 (outcome, champion, challenger) cell counts has the law of F1
    resampled customer by customer."""
    data = _scored(_customers(400, seed=11), 0.75, 0.8, seed=2)
    test = paired_bootstrap(data, "f1", null_gain=0.0, rate=0.05, draws=4000)
    assert test is not None
    rng = np.random.default_rng(9)
    y, a, b = data.outcome, data.champion_label, data.challenger_label
    gains = []
    for _ in range(4000):
        i = rng.integers(0, len(y), len(y))
        f1 = [2 * np.sum(y[i] & m[i]) / (y[i].sum() + m[i].sum()) for m in (a, b)]
        gains.append(f1[1] - f1[0])
    low, high = np.quantile(gains, [0.05, 0.95])
    assert test.gain_low == pytest.approx(low, abs=0.006) and test.gain_high == pytest.approx(high, abs=0.006)


@pytest.mark.parametrize("metric", ["roc_auc", "brier", "precision", "recall"])
def test_every_metric_is_tested_paired(metric: str) -> None:
    better = evaluate_gate(_scored(_customers(), 0.7, 0.9), GatePolicy(metric=metric, min_margin=0.0,
                                                                           min_segment_rows=1000))
    same = evaluate_gate(_scored(_customers(), 0.8, 0.8), GatePolicy(metric=metric, min_margin=0.0,
                                                                         min_segment_rows=1000))
    assert better.promote and better.p_value is not None and better.p_value <= 0.05
    assert not same.promote  # equal accuracy: no promotion (here; by chance at most 5 % of the time)
    assert same.p_value is not None and same.gain_low is not None


def test_the_policy_reads_the_gate_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_FALSE_PROMOTION_RATE", "0.01")
    monkeypatch.setenv("GATE_BOOTSTRAP_DRAWS", "500")
    monkeypatch.setenv("GATE_MIN_MARGIN", "0.02")
    policy = GatePolicy.from_settings()
    assert (policy.false_promotion_rate, policy.bootstrap_draws, policy.min_margin) == (0.01, 500, 0.02)
    defaults = GatePolicy()  # the declared defaults, not the environment
    declared = LifecycleSettings.model_fields["gate_false_promotion_rate"].default
    assert defaults.false_promotion_rate == declared == 0.05
    with pytest.raises(ValueError, match=r"strictly between 0 and 0\.5"):
        GatePolicy(false_promotion_rate=0.5)


# --- the false-promotion rate and the power, simulated on models trained as model.train trains ----

@pytest.fixture(scope="module")
def recipe() -> tuple[Population, list[Scored]]:
    """Four models trained like the champion, each on a bootstrap resample of the training split,
    scored on the held-out customers (bench/gate_power.py runs the full simulation)."""
    return recipe_models(4, seed=5)


def test_an_equal_recipe_challenger_is_promoted_at_most_at_the_stated_rate(
    recipe: tuple[Population, list[Scored]],
) -> None:
    population, models = recipe
    policy = GatePolicy()  # the defaults: 200 customers, margin 0.01, 5 %
    rates = simulate(population, models, rows=policy.min_rows, replicates=400,
                     policy=GatePolicy(bootstrap_draws=1000), seed=7)
    assert rates.gate / rates.replicates <= policy.false_promotion_rate
    assert rates.point_rule / rates.replicates > 0.10  # the point-estimate gate of before promoted by noise


def test_a_clearly_better_challenger_is_typically_promoted(recipe: tuple[Population, list[Scored]]) -> None:
    population, models = recipe
    rates = simulate(population, models, rows=800, replicates=100, true_gain=0.08,
                     policy=GatePolicy(bootstrap_draws=1000), seed=8)
    assert rates.gate / rates.replicates >= 0.8
