"""Realized performance per model version and window of prediction time, recomputed from the labels.

Each window holds the predictions made in it; those judged by a label (db/labels.py's rule) give
F1, precision, recall, ROC AUC and the Brier score with 95 % intervals (model/performance.py);
coverage = labelled / predictions. Recomputed every minute, whether or not a label file came, so a
late label revises its window and a window settles on time. Grafana reads the
`realized_performance` table.

**Settled** (`is_settled`): churners are known at once, stayers only at renewal, so the labelled
part of a recent window over-represents churners and its F1 reads high. A window is settled once
LABEL_HORIZON_DAYS have passed since its end (every outcome of its predictions is known by then)
or once SETTLED_MIN_COVERAGE of its predictions have an outcome. Decisions (the retrain rule, the
gate, retraining's rows) and the realized-F1 alert read settled outcomes only; the dashboard
shows the unsettled windows marked as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from core.settings import RealizedPerformanceSettings
from db.labels import count_predictions_per_window, labelled_predictions
from db.model_versions import training_f1
from db.realized_performance import replace_realized_performance
from db.session import session_scope
from model.performance import realized_performance


def is_settled(window_end: datetime, coverage: float, now: datetime,
               settings: RealizedPerformanceSettings) -> bool:
    """Are the outcomes of a window's predictions all in? Yes once LABEL_HORIZON_DAYS passed since
    the window's end, or once its coverage (labelled / predictions) reached SETTLED_MIN_COVERAGE."""
    return (window_end + timedelta(days=settings.label_horizon_days) <= now
            or coverage >= settings.settled_min_coverage)


def window_rows(judged: pd.DataFrame, counts: pd.DataFrame, window_minutes: int,
                training_f1s: Mapping[str, float | None], *,
                settings: RealizedPerformanceSettings | None = None,
                now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per (model_version, window) that has predictions: metrics of its labelled ones,
    coverage and whether the window is settled (`is_settled` with `settings`, at `now`).

    `judged`: labelled predictions (db.labels.labelled_predictions); `counts`: predictions per
    (model_version, window_start); `training_f1s`: each version's holdout F1 (None when unknown).
    """
    settings = settings or RealizedPerformanceSettings()
    now = now or datetime.now(UTC)
    step = pd.Timedelta(minutes=window_minutes)
    if len(judged):
        judged = judged.assign(window_start=judged["created_at"].dt.floor(step))
    rows = []
    for (version, start), total in counts.set_index(["model_version", "window_start"])["predictions"].items():
        part = judged[(judged["model_version"] == version) & (judged["window_start"] == start)] \
            if len(judged) else judged
        result = realized_performance(part["outcome"].to_numpy(dtype=int) if len(part) else [],
                                      part["predicted_label"].to_numpy(dtype=int) if len(part) else [],
                                      part["churn_probability"].to_numpy(dtype=float) if len(part) else [])
        coverage = result.rows / int(total)
        rows.append({
            "model_version": version, "window_start": start, "window_end": start + step,
            "predictions": int(total), "labelled": result.rows, "coverage": coverage,
            "settled": is_settled((start + step).to_pydatetime(), coverage, now, settings),
            "positives": result.positives, "f1": result.f1, "f1_low": result.f1_interval.low,
            "f1_high": result.f1_interval.high, "precision": result.precision,
            "precision_low": result.precision_interval.low, "precision_high": result.precision_interval.high,
            "recall": result.recall, "recall_low": result.recall_interval.low,
            "recall_high": result.recall_interval.high, "roc_auc": result.roc_auc,
            "roc_auc_low": result.roc_auc_interval.low, "roc_auc_high": result.roc_auc_interval.high,
            "brier": result.brier, "training_f1": training_f1s.get(version),
        })
    return rows


def refresh_realized_performance(settings: RealizedPerformanceSettings | None = None) -> int:
    """Recompute every window's realized performance in one transaction; returns the number of
    windows written."""
    settings = settings or RealizedPerformanceSettings()
    minutes = settings.realized_window_minutes
    with session_scope() as session:
        counts = count_predictions_per_window(session=session, window_minutes=minutes)
        if counts.empty:
            return 0
        return _store_windows(session, labelled_predictions(session=session), counts, minutes, settings)


def store_realized_windows(judged: pd.DataFrame, counts: pd.DataFrame, window_minutes: int) -> int:
    """Compute and store the windows of given labelled predictions and counts (the demo history's
    path, `scripts/demo_outcomes.py`), in one transaction; returns the windows written."""
    with session_scope() as session:
        return _store_windows(session, judged, counts, window_minutes, RealizedPerformanceSettings())


def _store_windows(session: Session, judged: pd.DataFrame, counts: pd.DataFrame, window_minutes: int,
                   settings: RealizedPerformanceSettings) -> int:
    f1s = {str(version): training_f1(session=session, model_version=str(version))
           for version in counts["model_version"].unique()}
    rows = window_rows(judged, counts, window_minutes, f1s, settings=settings)
    return replace_realized_performance(session=session, rows=rows)


def settled_predictions(judged: pd.DataFrame, windows: pd.DataFrame, settings: RealizedPerformanceSettings,
                        now: datetime | None = None) -> pd.DataFrame:
    """The rows of `judged` (labelled predictions with `model_version` and `created_at`) whose
    outcome is settled: LABEL_HORIZON_DAYS passed since the prediction, or the coverage of its
    window (`windows`: predictions and labelled per model_version and window_start, as
    db.labels.count_predictions_per_window gives them) reached SETTLED_MIN_COVERAGE."""
    if judged.empty:
        return judged
    now = now or datetime.now(UTC)
    step = pd.Timedelta(minutes=settings.realized_window_minutes)
    keyed = judged.assign(window_start=judged["created_at"].dt.floor(step))
    coverage = (windows["labelled"] / windows["predictions"]).rename("coverage")
    coverage.index = pd.MultiIndex.from_frame(windows[["model_version", "window_start"]])
    joined = keyed.join(coverage, on=["model_version", "window_start"])
    old = judged["created_at"] + pd.Timedelta(days=settings.label_horizon_days) <= pd.Timestamp(now)
    return judged[old | (joined["coverage"].fillna(0) >= settings.settled_min_coverage)]
