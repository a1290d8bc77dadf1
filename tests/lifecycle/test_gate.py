"""The promotion gate as a table of cases: it promotes a better challenger only, and says why not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from model.gate import EvaluationSet, GatePolicy, evaluate_gate, tenure_band

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
    assert "below the required margin +0.0200" in decision.reasons[0]


def test_a_tie_within_the_margin_keeps_the_champion() -> None:
    data = _scored(_customers(), 0.8, 0.8, seed=1)
    same = EvaluationSet(data.outcome, data.champion_label, data.champion_probability,
                         data.champion_label, data.champion_probability, data.segments)
    decision = evaluate_gate(same, POLICY)
    assert not decision.promote and "a gain of +0.0000" in decision.reasons[0]


def test_a_segment_regression_refuses_an_overall_better_challenger() -> None:
    # much better overall, but wrong on two-year contracts
    data = _scored(_customers(), 0.75, 0.95, challenger_in={"Two year": 0.5})
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
