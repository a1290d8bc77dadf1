"""The monthly partitions of `predictions`: created ahead, old ones dropped whole (retention).

`predictions` is partitioned by range of `created_at`, one partition per calendar month in UTC
(`predictions_p2026_01` holds [2026-01-01, 2026-02-01) UTC), plus `predictions_default`, the
safety net that takes a row no monthly partition covers so that an insert never fails for lack
of a partition (migration 0010). Three paths create partitions, all through the database function
`ensure_predictions_partitions(from, to)` (idempotent, one at a time under an advisory lock):
- the migration, for every month of the stored history and three months ahead;
- `maintain_partitions`, run by the API at start and every hour after (api/main.py) and by
  `python -m db.manage partitions`: this month and PREDICTIONS_PARTITIONS_AHEAD months ahead,
  plus the month of any row found in the default partition (moved into its own partition);
- `create_predictions` given an explicit `created_at` (the demo-history command writes the past).

Retention (PREDICTIONS_RETENTION_DAYS, unset = keep everything) drops whole partitions whose every
row is older than the cutoff: DETACH + DROP, never a row-by-row DELETE of predictions. A partition
is dropped once its month has ended more than that many days ago, so up to a month beyond the
setting is kept. The labels of dropped predictions keep their outcome and lose the link
(prediction_id NULL, as ON DELETE SET NULL would); the challenger's shadow scores of them go (as
ON DELETE CASCADE would); idempotency keys whose rows are all gone go too.
Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

PARTITION_NAME = re.compile(r"^predictions_(p\d{4}_\d{2}|default)$")
DEFAULT_PARTITION = "predictions_default"

ENSURE = text("SELECT ensure_predictions_partitions(:first_at, :last_at)")
PARTITIONS = text(r"""
    SELECT c.relname AS name,
           (regexp_match(b.bound, 'FROM \(''([^'']+)''\)'))[1]::timestamptz AS lower,
           (regexp_match(b.bound, 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
    WHERE i.inhparent = 'predictions'::regclass
    ORDER BY lower NULLS LAST
""")
DEFAULT_RANGE = text(f"SELECT min(created_at), max(created_at) FROM {DEFAULT_PARTITION}")
UNLINK_LABELS = text("""
    UPDATE labels SET prediction_id = NULL, prediction_created_at = NULL
    WHERE prediction_created_at >= :lower AND prediction_created_at < :upper
""")
DELETE_SHADOWS = text("""
    DELETE FROM shadow_predictions WHERE prediction_created_at >= :lower AND prediction_created_at < :upper
""")
DELETE_EMPTY_BATCHES = text("""
    DELETE FROM prediction_batches b
    WHERE b.batch_key = ANY(:keys)
      AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.batch_key = b.batch_key)
""")


@dataclass(frozen=True)
class Partition:
    """One monthly partition: rows with lower <= created_at < upper (UTC month bounds)."""

    name: str
    lower: datetime
    upper: datetime


@dataclass
class MaintenanceReport:
    """What `maintain_partitions` did: partitions created and dropped, rows moved from the default."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    moved_from_default: int = 0

    def summary(self) -> str:
        """One line for a log or the command line."""
        return (f"created {len(self.created)} partition(s) {self.created or ''}, dropped "
                f"{len(self.dropped)} {self.dropped or ''}, moved {self.moved_from_default} row(s) "
                "out of the default partition").replace("  ", " ")


def is_partition_table(name: str | None) -> bool:
    """True for a partition of `predictions` (not in db/models.py: Alembic's autogenerate skips it)."""
    return name is not None and PARTITION_NAME.match(name) is not None


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's `include_object` hook: autogenerate compares the tables of db/models.py, and the
    monthly partitions of predictions are not among them, nor the copies PostgreSQL makes of a
    foreign key to predictions for each partition (db/migrations/env.py, the model test)."""
    if type_ == "table":
        return not is_partition_table(name)
    if type_ == "foreign_key_constraint":
        return not is_partition_table(obj.referred_table.name)
    return True


def ensure_partitions(*, session: Session, first_at: datetime, last_at: datetime) -> list[str]:
    """Create the monthly partitions covering [first_at, last_at]; return the names created.

    Rows of those months found in the default partition move into their new partition. Takes a
    transaction-level advisory lock, so concurrent callers create each partition once.
    """
    return list(session.scalars(ENSURE, {"first_at": first_at, "last_at": last_at}))


def list_partitions(*, session: Session) -> list[Partition]:
    """The monthly partitions, oldest first (the default partition is not listed)."""
    return [Partition(row.name, row.lower, row.upper)
            for row in session.execute(PARTITIONS) if row.name != DEFAULT_PARTITION]


def count_default_rows(*, session: Session) -> int:
    """Rows in the default partition (0 after maintenance: each one belongs to a monthly partition)."""
    return int(session.scalar(text(f"SELECT count(*) FROM {DEFAULT_PARTITION}")) or 0)


def drop_partitions_before(*, session: Session, cutoff: datetime) -> list[str]:
    """Drop every monthly partition whose rows are all older than `cutoff` (upper bound <= cutoff).

    The references to its rows go first (labels unlinked, shadow scores deleted), then the
    partition is detached and dropped whole; idempotency keys left without rows are deleted.
    Returns the names dropped, oldest first.
    """
    dropped = []
    for partition in list_partitions(session=session):
        if partition.upper > cutoff:
            continue
        bounds = {"lower": partition.lower, "upper": partition.upper}
        keys = list(session.scalars(text(
            f'SELECT DISTINCT batch_key FROM "{partition.name}" WHERE batch_key IS NOT NULL')))
        session.execute(UNLINK_LABELS, bounds)
        session.execute(DELETE_SHADOWS, bounds)
        session.execute(text(f'ALTER TABLE predictions DETACH PARTITION "{partition.name}"'))
        session.execute(text(f'DROP TABLE "{partition.name}"'))
        session.execute(DELETE_EMPTY_BATCHES, {"keys": keys})
        dropped.append(partition.name)
    return dropped


def maintain_partitions(
    *, session: Session, months_ahead: int, retention_days: int | None, now: datetime | None = None,
) -> MaintenanceReport:
    """The periodic job: partitions for this month and `months_ahead` more, default rows moved
    into their months, and (when `retention_days` is set) partitions older than that dropped.

    `now` defaults to the current time (UTC). Raises sqlalchemy.exc.DBAPIError on database errors
    (the transaction is then unusable).
    """
    now = now or datetime.now(UTC)
    report = MaintenanceReport()
    oldest, newest = session.execute(DEFAULT_RANGE).one()
    if oldest is not None:
        report.moved_from_default = count_default_rows(session=session)
        report.created += ensure_partitions(session=session, first_at=oldest, last_at=newest)
    report.created += ensure_partitions(session=session, first_at=now, last_at=_add_months(now, months_ahead))
    if retention_days is not None:
        report.dropped = drop_partitions_before(session=session, cutoff=now - timedelta(days=retention_days))
    return report


def _add_months(instant: datetime, months: int) -> datetime:
    """The first instant of the UTC month `months` after `instant`'s month."""
    utc = instant.astimezone(UTC)
    index = utc.year * 12 + utc.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
