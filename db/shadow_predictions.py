"""The `shadow_predictions` table: the challenger's scores of served predictions, and the rows the
promotion gate judges (labelled customers both versions scored). Every function takes the caller's
session; the caller commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from db.models import ShadowPrediction
from model.contract import FEATURE_NAMES


def store_shadow_predictions(
    *, session: Session, prediction_ids: Sequence[int], model_version: str, labels: Sequence[int],
    probabilities: Sequence[float],
) -> int:
    """Store the challenger's scores of stored predictions (idempotent per prediction and version).

    The three sequences are parallel (one entry per prediction). Returns how many were given.
    """
    if not prediction_ids:
        return 0
    rows = [{"prediction_id": i, "model_version": model_version, "predicted_label": label,
             "churn_probability": p}
            for i, label, p in zip(prediction_ids, labels, probabilities, strict=True)]
    session.execute(pg_insert(ShadowPrediction).values(rows).on_conflict_do_nothing(
        constraint="uq_shadow_predictions_prediction_version"))
    return len(rows)


def count_shadow_predictions(*, session: Session, prediction_ids: Sequence[int]) -> int:
    """How many of these predictions the challenger has scored in shadow (any version)."""
    return session.scalar(select(func.count(func.distinct(ShadowPrediction.prediction_id)))
                          .where(ShadowPrediction.prediction_id.in_(list(prediction_ids)))) or 0


GATE_ROWS = text(f"""
    SELECT DISTINCT ON (p.id) p.id AS prediction_id, p.created_at, p.model_version, l.churn AS outcome,
           p.predicted_label AS champion_label, p.churn_probability AS champion_probability,
           s.predicted_label AS challenger_label, s.churn_probability AS challenger_probability,
           {", ".join(f"p.{f}" for f in FEATURE_NAMES)}
    FROM labels AS l
    JOIN predictions AS p ON p.id = l.prediction_id
    JOIN shadow_predictions AS s ON s.prediction_id = p.id AND s.model_version = :challenger
    WHERE p.model_version = :champion AND p.created_at >= :since
    ORDER BY p.id, l.known_at
""")


def gate_rows(*, session: Session, champion: str, challenger: str, since: datetime) -> list[dict[str, Any]]:
    """The labelled customers both models scored (the champion served, the challenger in shadow),
    predicted since `since`: prediction_id, created_at, model_version (the champion's), outcome,
    both labels and probabilities, and the features. Settled or not: the caller filters."""
    return [dict(r) for r in session.execute(
        GATE_ROWS, {"champion": champion, "challenger": challenger, "since": since}).mappings()]
