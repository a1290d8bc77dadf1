"""The `promotion_decisions` table: every register, promote, reject, rollback, superseded
challenger and refused alias move (conflict) of a model version. Every function takes the
caller's session; the caller commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import PromotionDecision


def record_decision(*, session: Session, **fields: Any) -> int:
    """Insert one promotion_decisions row (columns of db.models.PromotionDecision); returns its id."""
    decision = PromotionDecision(**fields)
    session.add(decision)
    session.flush()
    return decision.id


def latest_decision(*, session: Session, action: str) -> dict[str, Any] | None:
    """The latest decision of one action ("reject", ...) as a dict of its columns, or None."""
    row = session.scalars(select(PromotionDecision).where(PromotionDecision.action == action)
                          .order_by(PromotionDecision.id.desc()).limit(1)).first()
    if row is None:
        return None
    return {c.name: getattr(row, c.name) for c in PromotionDecision.__table__.columns}


def list_decisions(*, session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The latest decisions, newest first, each as a dict of its columns."""
    rows = session.scalars(select(PromotionDecision).order_by(PromotionDecision.id.desc()).limit(limit))
    return [{c.name: getattr(row, c.name) for c in PromotionDecision.__table__.columns} for row in rows]
