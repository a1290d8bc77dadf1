"""The one code path that writes predictions, and the queries that read them back.

Writes are one transaction per request: the batch key (when given) is claimed first, ids are
drawn from the sequence in one round trip, then every row goes through a single COPY. COPY has
no RETURNING, hence the ids drawn beforehand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from db.models import SOURCES, Prediction, PredictionBatch
from model.contract import FEATURE_NAMES, IDENTIFIER

PREDICTIONS = Prediction.__table__
STORED_COLUMNS = ("id", "source", "file_name", "batch_key", "model_version", "predicted_label",
                  "churn_probability", IDENTIFIER, *FEATURE_NAMES)


@dataclass(frozen=True)
class StoredBatch:
    ids: list[int]
    replayed: bool  # the batch key was already stored: nothing was written


def create_predictions(
    *,
    session: Session,
    source: str,
    records: Sequence[Mapping[str, Any]],
    labels: Sequence[int],
    probabilities: Sequence[float],
    model_version: str,
    file_name: str | None = None,
    batch_key: str | None = None,
    created_at: datetime | None = None,
) -> list[int]:
    """Store scored records in the session's transaction; return their ids in record order.

    With a `batch_key` already stored, nothing is written and the stored batch's ids come back.
    `created_at` (default: the transaction time) lets the demo-history command write the past.
    """
    return store_predictions(
        session=session, source=source, records=records, labels=labels,
        probabilities=probabilities, model_version=model_version, file_name=file_name,
        batch_key=batch_key, created_at=created_at,
    ).ids


def store_predictions(
    *,
    session: Session,
    source: str,
    records: Sequence[Mapping[str, Any]],
    labels: Sequence[int],
    probabilities: Sequence[float],
    model_version: str,
    file_name: str | None = None,
    batch_key: str | None = None,
    created_at: datetime | None = None,
) -> StoredBatch:
    """create_predictions, also telling whether the batch key was a replay."""
    if not len(records) == len(labels) == len(probabilities):
        raise ValueError(
            f"{len(records)} records, {len(labels)} labels, {len(probabilities)} probabilities"
        )
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: one of {list(SOURCES)}")
    if batch_key is not None and not _claim_batch_key(session, batch_key, file_name, len(records)):
        return StoredBatch(ids=stored_batch_ids(session=session, batch_key=batch_key), replayed=True)
    ids = _draw_ids(session, len(records))
    columns = list(STORED_COLUMNS)
    if created_at is not None:
        columns.append("created_at")
    fixed_tail = (created_at,) if created_at is not None else ()
    rows = (
        (id_, source, file_name, batch_key, model_version, label, probability,
         record.get(IDENTIFIER), *[record.get(name) for name in FEATURE_NAMES], *fixed_tail)
        for id_, record, label, probability in zip(ids, records, labels, probabilities, strict=True)
    )
    _copy_rows(session, columns, rows)
    return StoredBatch(ids=ids, replayed=False)


def _claim_batch_key(session: Session, batch_key: str, file_name: str | None, rows: int) -> bool:
    """Insert the key; False when it exists. A concurrent twin waits here for the first to commit."""
    claimed = session.execute(
        pg_insert(PredictionBatch)
        .values(batch_key=batch_key, file_name=file_name, rows=rows)
        .on_conflict_do_nothing(index_elements=["batch_key"])
        .returning(PredictionBatch.batch_key)
    ).first()
    return claimed is not None


def _draw_ids(session: Session, count: int) -> list[int]:
    if count == 0:
        return []
    result = session.execute(
        select(func.nextval(func.pg_get_serial_sequence("predictions", "id")))
        .select_from(func.generate_series(1, count))
    )
    return sorted(result.scalars())


def _copy_rows(session: Session, columns: list[str], rows: Any) -> None:
    """COPY the rows through the session's own connection, so they share its transaction."""
    connection = session.connection().connection.driver_connection
    statement = sql.SQL("COPY predictions ({}) FROM STDIN").format(
        sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def stored_batch_ids(*, session: Session, batch_key: str) -> list[int]:
    return list(session.scalars(
        select(PREDICTIONS.c.id).where(PREDICTIONS.c.batch_key == batch_key).order_by(PREDICTIONS.c.id)
    ))


def find_batch(*, session: Session, batch_key: str) -> list[Mapping[str, Any]] | None:
    """The stored predictions of a batch key, in request order; None when the key is unknown."""
    if session.get(PredictionBatch, batch_key) is None:
        return None
    rows = session.execute(
        select(PREDICTIONS).where(PREDICTIONS.c.batch_key == batch_key).order_by(PREDICTIONS.c.id)
    )
    return list(rows.mappings())


def count_predictions(*, session: Session, start: datetime, end: datetime, source: str | None) -> int:
    query = select(func.count()).select_from(PREDICTIONS).where(*_window(start, end, source))
    return session.execute(query).scalar_one()


def list_predictions(
    *, session: Session, start: datetime, end: datetime, source: str | None, limit: int, offset: int,
) -> list[Mapping[str, Any]]:
    """Stored predictions created in [start, end), newest first (the created_at, id index)."""
    query = (
        select(PREDICTIONS)
        .where(*_window(start, end, source))
        .order_by(PREDICTIONS.c.created_at.desc(), PREDICTIONS.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(session.execute(query).mappings())


def _window(start: datetime, end: datetime, source: str | None) -> list[Any]:
    conditions = [PREDICTIONS.c.created_at >= start, PREDICTIONS.c.created_at < end]
    if source is not None:
        conditions.append(PREDICTIONS.c.source == source)
    return conditions

