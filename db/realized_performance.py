"""The `realized_performance` table: measured metrics per model version and window, once outcomes
are known. Every function takes the caller's session; the caller commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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


def latest_realized_f1(
    *, session: Session, model_version: str,
) -> tuple[float, float | None, float | None, float | None] | None:
    """(F1, interval low, high, training F1) of the version's latest window with labels, or None."""
    row = session.execute(
        select(RealizedPerformanceWindow.f1, RealizedPerformanceWindow.f1_low,
               RealizedPerformanceWindow.f1_high, RealizedPerformanceWindow.training_f1)
        .where(RealizedPerformanceWindow.model_version == model_version,
               RealizedPerformanceWindow.f1.is_not(None))
        .order_by(RealizedPerformanceWindow.window_start.desc()).limit(1)).first()
    return None if row is None or row[0] is None else (row[0], row[1], row[2], row[3])
