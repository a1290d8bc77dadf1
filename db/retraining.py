"""The `retrain_attempts` table: every retraining, recorded when it starts and when it ends.
Every function takes the caller's session; the caller commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.models import RetrainAttempt


def start_retrain_attempt(*, session: Session, reason: str, started_by: str) -> int:
    """Insert a `running` attempt (started now); returns its id. Commit it at once: an attempt
    that crashes still counts for the retrain trigger."""
    attempt = RetrainAttempt(outcome="running", reason=reason, started_by=started_by)
    session.add(attempt)
    session.flush()
    return attempt.id


def finish_retrain_attempt(*, session: Session, attempt_id: int, outcome: str,
                           registry_version: int | None = None, detail: str | None = None) -> None:
    """Close an attempt: `registered` (with the challenger's registry version), `failed` or
    `conflict` (with what happened in `detail`)."""
    session.execute(update(RetrainAttempt).where(RetrainAttempt.id == attempt_id).values(
        outcome=outcome, finished_at=func.now(), registry_version=registry_version, detail=detail))


def latest_retrain_start(*, session: Session) -> datetime | None:
    """When the latest retraining started, whatever became of it; None when none ever did."""
    return session.scalar(select(func.max(RetrainAttempt.started_at)))


def list_retrain_attempts(*, session: Session, limit: int = 20) -> list[dict[str, object]]:
    """The latest attempts, newest first, each as a dict of its columns."""
    rows = session.scalars(select(RetrainAttempt).order_by(RetrainAttempt.id.desc()).limit(limit))
    return [{c.name: getattr(row, c.name) for c in RetrainAttempt.__table__.columns} for row in rows]
