"""Load a trained model's metadata (metrics and drift baseline) into the database."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from db.models import BaselineBin, BaselineFeature, ModelVersion


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


def load_training_baseline(*, session: Session, metadata: dict[str, Any]) -> str:
    """Insert (or replace) the model version, its feature statistics and bins. Idempotent."""
    version = metadata["model_version"]
    session.execute(delete(ModelVersion).where(ModelVersion.model_version == version))
    session.flush()
    session.add(ModelVersion(
        model_version=version,
        trained_at=datetime.fromisoformat(metadata["trained_at"]),
        metrics=metadata["metrics"],
        threshold=metadata["threshold"],
        training_churn_rate=metadata["training_churn_rate"],
    ))
    session.flush()
    for feature, stats in metadata["baseline"].items():
        session.add(BaselineFeature(
            model_version=version, feature=feature, kind=stats["kind"],
            mean=stats.get("mean"), std=stats.get("std"), null_share=stats.get("null_share"),
        ))
        session.add_all(_bin_rows(version, feature, stats))
    return version
