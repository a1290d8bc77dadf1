"""The `realized_performance` table: measured metrics per model version and window, once outcomes
are known. Every function takes the caller's session; the caller commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from db.models import RealizedPerformanceWindow


def replace_realized_performance(*, session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """Upsert realized-performance rows keyed by (model_version, window_start); returns the count."""
    if not rows:
        return 0
    statement = pg_insert(RealizedPerformanceWindow).values(list(rows))
    keys = {"model_version", "window_start"}
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: statement.excluded[c] for c in rows[0] if c not in keys} | {"computed_at": text("now()")},
    )
    session.execute(statement)
    return len(rows)


class RealizedF1(NamedTuple):
    f1: float
    low: float | None  # 95 % interval
    high: float | None
    training_f1: float | None
    window_end: datetime
    computed_at: datetime


def latest_realized_f1(*, session: Session, model_version: str) -> RealizedF1 | None:
    """The realized F1 of the version's latest SETTLED window with labels (unsettled windows
    over-represent churners, known first), or None when there is none."""
    row = session.execute(
        select(RealizedPerformanceWindow.f1, RealizedPerformanceWindow.f1_low,
               RealizedPerformanceWindow.f1_high, RealizedPerformanceWindow.training_f1,
               RealizedPerformanceWindow.window_end, RealizedPerformanceWindow.computed_at)
        .where(RealizedPerformanceWindow.model_version == model_version,
               RealizedPerformanceWindow.settled, RealizedPerformanceWindow.f1.is_not(None))
        .order_by(RealizedPerformanceWindow.window_start.desc()).limit(1)).first()
    if row is None or row[0] is None:
        return None
    return RealizedF1(f1=row[0], low=row[1], high=row[2], training_f1=row[3], window_end=row[4],
                      computed_at=row[5])
