"""Realized performance per model version and window of prediction time, recomputed from the labels.

Each window holds the predictions made in it; those judged by a label (db/labels.py's rule) give
F1, precision, recall, ROC AUC and the Brier score with 95 % intervals (model/performance.py);
coverage = labelled / predictions. Recomputed after every label file, so a late label revises
its window. Grafana reads the `realized_performance` table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from core.settings import RealizedPerformanceSettings
from db.labels import count_predictions_per_window, labelled_predictions
from db.model_versions import training_f1
from db.realized_performance import replace_realized_performance
from db.session import session_scope
from model.performance import realized_performance


def window_rows(judged: pd.DataFrame, counts: pd.DataFrame, window_minutes: int,
                training_f1s: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """One row per (model_version, window) that has predictions: metrics of its labelled ones.

    `judged`: labelled predictions (db.labels.labelled_predictions); `counts`: predictions per
    (model_version, window_start); `training_f1s`: each version's holdout F1 (None when unknown).
    """
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
        rows.append({
            "model_version": version, "window_start": start, "window_end": start + step,
            "predictions": int(total), "labelled": result.rows, "coverage": result.rows / int(total),
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
        return _store_windows(session, labelled_predictions(session=session), counts, minutes)


def store_realized_windows(judged: pd.DataFrame, counts: pd.DataFrame, window_minutes: int) -> int:
    """Compute and store the windows of given labelled predictions and counts (the demo history's
    path, `scripts/demo_outcomes.py`), in one transaction; returns the windows written."""
    with session_scope() as session:
        return _store_windows(session, judged, counts, window_minutes)


def _store_windows(session: Session, judged: pd.DataFrame, counts: pd.DataFrame, window_minutes: int) -> int:
    f1s = {str(version): training_f1(session=session, model_version=str(version))
           for version in counts["model_version"].unique()}
    rows = window_rows(judged, counts, window_minutes, f1s)
    return replace_realized_performance(session=session, rows=rows)
