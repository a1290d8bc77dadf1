"""Realized performance of the demo history, so the drift dashboard's realized-F1 panel and its
alert have a story the first time (scripts/seed_demo_history.py calls it).

The outcome of a demo prediction is the dataset's own label of that customer, known for all but
one in LABEL_GAP of them (coverage 98 %: the demo's outcomes are in, so its windows are
settled, SETTLED_MIN_COVERAGE, and the realized-F1 alert may judge them); the promotion's
newcomers of the drift episode all stay (their contract holds them), so a model that predicted
churn for every one of them is wrong about them all and the realized F1 of the windows they fall
in drops well below the training F1. The windows are computed by the realized-performance job's
own function (jobs/realized.py), from the demo's predictions as scored, and stored through
jobs/realized.py.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from core.settings import RealizedPerformanceSettings
from model.contract import IDENTIFIER, POSITIVE_LABEL, TARGET

LABEL_GAP = 50  # every 50th demo prediction's outcome is missing: coverage 98 % in every window


@dataclass(frozen=True)
class ScoredDemoRecord:
    customer_id: str
    created_at: datetime
    predicted_label: int
    churn_probability: float
    in_drift: bool  # a promotion newcomer of the drift episode


def write_demo_realized_performance(
    scored: Sequence[ScoredDemoRecord], *, dataset: pd.DataFrame, model_version: str, rng: random.Random,
) -> int:
    """Compute and store the demo's realized-performance windows; returns the windows written."""
    from jobs.realized import store_realized_windows

    if not scored:
        return 0
    truth = dataset.set_index(IDENTIFIER)[TARGET].eq(POSITIVE_LABEL).astype(int)
    frame = pd.DataFrame([vars(r) for r in scored]).assign(model_version=model_version)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["outcome"] = [0 if r.in_drift else int(truth[r.customer_id]) for r in scored]
    judged = frame[[i % LABEL_GAP != LABEL_GAP - 1 for i in range(len(frame))]]
    step = pd.Timedelta(minutes=RealizedPerformanceSettings().realized_window_minutes)
    counts = (frame.assign(window_start=frame["created_at"].dt.floor(step))
              .groupby(["model_version", "window_start"]).size().rename("predictions").reset_index())
    return store_realized_windows(judged, counts, int(step.total_seconds() // 60))
