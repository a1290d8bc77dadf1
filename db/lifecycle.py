"""Lifecycle records: shadow predictions, promotion decisions, realized performance per window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.models import ModelVersion, PromotionDecision, RealizedPerformanceWindow, ShadowPrediction
from db.session import get_engine, session_scope
from model.contract import FEATURE_NAMES


def store_shadow_predictions(
    *, prediction_ids: Sequence[int], model_version: str, labels: Sequence[int],
    probabilities: Sequence[float],
) -> int:
    """Store the challenger's scores of stored predictions (idempotent per prediction and version)."""
    if not prediction_ids:
        return 0
    rows = [{"prediction_id": i, "model_version": model_version, "predicted_label": label,
             "churn_probability": p}
            for i, label, p in zip(prediction_ids, labels, probabilities, strict=True)]
    with session_scope() as session:
        session.execute(pg_insert(ShadowPrediction).values(rows).on_conflict_do_nothing(
            constraint="uq_shadow_predictions_prediction_version"))
    return len(rows)


def record_decision(**fields: Any) -> int:
    """Insert one promotion_decisions row (columns of db.models.PromotionDecision); returns its id."""
    with session_scope() as session:
        decision = PromotionDecision(**fields)
        session.add(decision)
        session.flush()
        return decision.id


def list_decisions(limit: int = 20) -> list[dict[str, Any]]:
    """The latest decisions, newest first."""
    with session_scope() as session:
        rows = session.scalars(select(PromotionDecision).order_by(PromotionDecision.id.desc()).limit(limit))
        return [{c.name: getattr(row, c.name) for c in PromotionDecision.__table__.columns} for row in rows]


def set_registry_version(*, model_version: str, registry_version: int) -> None:
    with session_scope() as session:
        session.execute(update(ModelVersion).where(ModelVersion.model_version == model_version)
                        .values(registry_version=registry_version))


def training_f1(*, model_version: str) -> float | None:
    """The holdout F1 a version was trained to (model_versions.metrics), None when unknown."""
    with session_scope() as session:
        metrics = session.scalar(
            select(ModelVersion.metrics).where(ModelVersion.model_version == model_version))
    return None if metrics is None else float(metrics["f1"])


def replace_realized_performance(rows: Sequence[Mapping[str, Any]]) -> int:
    """Upsert realized-performance rows keyed by (model_version, window_start)."""
    if not rows:
        return 0
    statement = pg_insert(RealizedPerformanceWindow).values(list(rows))
    keys = {"model_version", "window_start"}
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: statement.excluded[c] for c in rows[0] if c not in keys} | {"computed_at": text("now()")},
    )
    with session_scope() as session:
        session.execute(statement)
    return len(rows)


GATE_ROWS = text(f"""
    SELECT DISTINCT ON (p.id) l.churn AS outcome,
           p.predicted_label AS champion_label, p.churn_probability AS champion_probability,
           s.predicted_label AS challenger_label, s.churn_probability AS challenger_probability,
           {", ".join(f"p.{f}" for f in FEATURE_NAMES)}
    FROM labels AS l
    JOIN predictions AS p ON p.id = l.prediction_id
    JOIN shadow_predictions AS s ON s.prediction_id = p.id AND s.model_version = :challenger
    WHERE p.model_version = :champion AND p.created_at >= :since
    ORDER BY p.id, l.known_at
""")


def gate_rows(*, champion: str, challenger: str, since: datetime) -> list[dict[str, Any]]:
    """The labelled customers both models scored (the champion served, the challenger in shadow),
    predicted since `since`: outcome, both labels and probabilities, and the features."""
    with get_engine().connect() as connection:
        return [dict(r) for r in connection.execute(
            GATE_ROWS, {"champion": champion, "challenger": challenger, "since": since}).mappings()]


def latest_realized_f1(
    *, model_version: str,
) -> tuple[float, float | None, float | None, float | None] | None:
    """(F1, interval low, high, training F1) of the version's latest window with labels, or None."""
    with session_scope() as session:
        row = session.execute(
            select(RealizedPerformanceWindow.f1, RealizedPerformanceWindow.f1_low,
                   RealizedPerformanceWindow.f1_high, RealizedPerformanceWindow.training_f1)
            .where(RealizedPerformanceWindow.model_version == model_version,
                   RealizedPerformanceWindow.f1.is_not(None))
            .order_by(RealizedPerformanceWindow.window_start.desc()).limit(1)).first()
    return None if row is None or row[0] is None else (row[0], row[1], row[2], row[3])


def count_shadow_predictions(*, prediction_ids: Sequence[int]) -> int:
    """How many of these predictions the challenger has scored in shadow (any version)."""
    with session_scope() as session:
        return session.scalar(select(func.count(func.distinct(ShadowPrediction.prediction_id)))
                              .where(ShadowPrediction.prediction_id.in_(list(prediction_ids)))) or 0
