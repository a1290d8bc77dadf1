"""Realized performance per model version and window of prediction time, recomputed from the labels.

Each window holds the predictions made in it; those judged by a label (db/labels.py's rule) give
F1, precision, recall, ROC AUC and the Brier score with 95 % intervals (model/performance.py);
coverage = labelled / predictions. Recomputed after every label file, so a late label revises
its window. Grafana reads the `realized_performance` table.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from core.settings import RealizedPerformanceSettings
from db.labels import count_predictions_per_window, labelled_predictions
from db.lifecycle import replace_realized_performance, training_f1
from model.performance import realized_performance


def window_rows(judged: pd.DataFrame, counts: pd.DataFrame, window_minutes: int) -> list[dict[str, Any]]:
    """One row per (model_version, window) that has predictions: metrics of its labelled ones."""
    step = pd.Timedelta(minutes=window_minutes)
    if len(judged):
        judged = judged.assign(window_start=judged["created_at"].dt.floor(step))
    f1_of: dict[str, float | None] = {}
    rows = []
    for (version, start), total in counts.set_index(["model_version", "window_start"])["predictions"].items():
        part = judged[(judged["model_version"] == version) & (judged["window_start"] == start)] \
            if len(judged) else judged
        result = realized_performance(part["outcome"].to_numpy(dtype=int) if len(part) else [],
                                      part["predicted_label"].to_numpy(dtype=int) if len(part) else [],
                                      part["churn_probability"].to_numpy(dtype=float) if len(part) else [])
        if version not in f1_of:
            f1_of[version] = training_f1(model_version=version)
        rows.append({
            "model_version": version, "window_start": start, "window_end": start + step,
            "predictions": int(total), "labelled": result.rows, "coverage": result.rows / int(total),
            "positives": result.positives, "f1": result.f1, "f1_low": result.f1_interval.low,
            "f1_high": result.f1_interval.high, "precision": result.precision,
            "precision_low": result.precision_interval.low, "precision_high": result.precision_interval.high,
            "recall": result.recall, "recall_low": result.recall_interval.low,
            "recall_high": result.recall_interval.high, "roc_auc": result.roc_auc,
            "roc_auc_low": result.roc_auc_interval.low, "roc_auc_high": result.roc_auc_interval.high,
            "brier": result.brier, "training_f1": f1_of[version],
        })
    return rows


def refresh_realized_performance(settings: RealizedPerformanceSettings | None = None) -> int:
    """Recompute every window's realized performance; returns the number of windows written."""
    settings = settings or RealizedPerformanceSettings()
    minutes = settings.realized_window_minutes
    counts = count_predictions_per_window(window_minutes=minutes)
    if counts.empty:
        return 0
    rows = window_rows(labelled_predictions(), counts, minutes)
    return replace_realized_performance(rows)
