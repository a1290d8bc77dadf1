"""Trained models known to the database (tables `model_versions`, `baseline_features`,
`baseline_bins`): each version's metrics and threshold, and its drift baseline.

The baseline itself is computed from the training data by model/baseline.py and written into the
model's metadata.json at training; this module stores it where the drift SQL (migration 0002)
and the dashboards read it.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from core.settings import DriftMonitoringSettings
from db.models import BaselineBin, BaselineFeature, ModelVersion
from db.monitoring import MonitoringThresholds, load_monitoring_reference


def _bin_rows(version: str, feature: str, stats: dict[str, Any]) -> list[BaselineBin]:
    if stats["kind"] == "categorical":
        return [
            BaselineBin(model_version=version, feature=feature, bin=i, category=value, proportion=p)
            for i, (value, p) in enumerate(stats["proportions"].items())
        ]
    edges = stats["bin_edges"]
    bounds = [-math.inf, *edges[1:-1], math.inf]
    return [
        BaselineBin(
            model_version=version, feature=feature, bin=i,
            lower=None if math.isinf(bounds[i]) else bounds[i],
            upper=None if math.isinf(bounds[i + 1]) else bounds[i + 1],
            proportion=p,
        )
        for i, p in enumerate(stats["bin_proportions"])
    ]


def record_model_version(*, session: Session, metadata: dict[str, Any]) -> str:
    """Insert (or replace) a model version, its metrics and its drift baseline; return the version.

    `metadata` is the content of model/artifacts/metadata.json (model/train.py): model_version,
    trained_at (ISO 8601), metrics, threshold, training_churn_rate and `baseline` (per feature:
    kind, mean/std/null_share, and bin edges with proportions or category proportions).
    Idempotent: recording the same version again replaces its rows (keeping its registry number
    and the time it began being served).
    """
    version = metadata["model_version"]
    kept = session.execute(select(ModelVersion.registry_version, ModelVersion.served_since)
                           .where(ModelVersion.model_version == version)).first()
    session.execute(delete(ModelVersion).where(ModelVersion.model_version == version))
    session.flush()
    session.add(ModelVersion(
        model_version=version,
        trained_at=datetime.fromisoformat(metadata["trained_at"]),
        metrics=metadata["metrics"],
        threshold=metadata["threshold"],
        training_churn_rate=metadata["training_churn_rate"],
        # what serving recorded about the version survives a reload of its references
        registry_version=kept.registry_version if kept else None,
        served_since=kept.served_since if kept else None,
    ))
    session.flush()
    for feature, stats in metadata["baseline"].items():
        session.add(BaselineFeature(
            model_version=version, feature=feature, kind=stats["kind"],
            mean=stats.get("mean"), std=stats.get("std"), null_share=stats.get("null_share"),
        ))
        session.add_all(_bin_rows(version, feature, stats))
    session.flush()
    thresholds = MonitoringThresholds.from_settings(DriftMonitoringSettings())
    load_monitoring_reference(session=session, metadata=metadata, thresholds=thresholds)  # drift tests, CBPE
    return version


def set_registry_version(*, session: Session, model_version: str, registry_version: int) -> None:
    """Record which MLflow registry version number a stored model version was registered as."""
    session.execute(update(ModelVersion).where(ModelVersion.model_version == model_version)
                    .values(registry_version=registry_version))


def has_model_version(*, session: Session, model_version: str) -> bool:
    """True when the version's row (and so its references) is in the database."""
    return session.scalar(select(ModelVersion.model_version)
                          .where(ModelVersion.model_version == model_version)) is not None


def registry_numbers(*, session: Session) -> dict[str, int | None]:
    """Every stored model version with the registry number recorded for it (None: not recorded)."""
    return {version: number for version, number in
            session.execute(select(ModelVersion.model_version, ModelVersion.registry_version))}


def mark_served(*, session: Session, model_version: str) -> bool:
    """Record that the API now serves `model_version` as champion (served_since = now), unless it is
    already the latest served version. The drift SQL (`drift_baseline_version()`, migration 0010)
    compares with the latest served version. True when the row changed; the row must exist."""
    latest = select(ModelVersion.model_version).where(ModelVersion.served_since.is_not(None)) \
        .order_by(ModelVersion.served_since.desc()).limit(1).scalar_subquery()
    result = session.execute(
        update(ModelVersion)
        .where(ModelVersion.model_version == model_version,
               or_(ModelVersion.served_since.is_(None), ModelVersion.model_version != latest))
        .values(served_since=func.now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def served_version(*, session: Session) -> str | None:
    """The version served last (the drift reference), None when none was ever marked served."""
    return session.scalar(select(ModelVersion.model_version).where(ModelVersion.served_since.is_not(None))
                          .order_by(ModelVersion.served_since.desc()).limit(1))


def training_f1(*, session: Session, model_version: str) -> float | None:
    """The holdout F1 a version was trained to (model_versions.metrics), None when unknown."""
    metrics = session.scalar(select(ModelVersion.metrics).where(ModelVersion.model_version == model_version))
    return None if metrics is None else float(metrics["f1"])
