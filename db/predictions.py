"""Predictions and their idempotency keys (tables `predictions`, `prediction_batches`).

The one code path that writes predictions (the API's /predict and the demo-history seeder call
it), and the queries that read them back. Nothing here commits, the caller owns the transaction, except in
`store_one_prediction`: one record stored by one statement, which is its own transaction.

A write is one transaction per request: the batch key (when given) is claimed first, then the
rows go in with one statement round trip: a pipelined INSERT ... RETURNING for a few rows (the
webapp's single records), or, for batches, ids drawn from the sequence in one query and a single
COPY of every row (COPY has no RETURNING, hence the ids drawn beforehand).

The reason-code columns are written and read here only: writers pass each record's reasons as
model.reasons.stored_values lays them out, readers get `StoredPrediction` mappings whose
`reasons` are already a list of {feature, value, contribution}.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

import psycopg
from psycopg import sql
from sqlalchemy import CursorResult, Result, Select, delete, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from db.models import REASON_COLUMNS, REASON_SLOTS, SOURCES, Prediction, PredictionBatch
from db.partitions import ensure_partitions
from model.contract import FEATURE_NAMES, IDENTIFIER

PREDICTIONS = Prediction.__table__
STORED_COLUMNS = ("source", "file_name", "batch_key", "model_version", "predicted_label",
                  "churn_probability", IDENTIFIER, *FEATURE_NAMES)
DRAW_IDS = "SELECT array_agg(nextval(%s::regclass)) FROM generate_series(1, %s)"
_id_sequence: list[str] = []  # the ids' sequence, looked up on first use (same in every database)
INSERT_UP_TO_ROWS = 50  # up to here, INSERT ... RETURNING (one round trip); above, ids + COPY
# (feature, contribution) of each slot, as indexes into REASON_COLUMNS / stored_values' rows
REASON_PAIRS = tuple((2 * slot, 2 * slot + 1) for slot in range(REASON_SLOTS))


@dataclass(frozen=True)
class StoredBatch:
    """What `create_predictions` stored: the rows' ids in record order, or the earlier batch's."""

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
    reasons: Sequence[Sequence[Any]] | None = None,
    file_name: str | None = None,
    batch_key: str | None = None,
    created_at: datetime | None = None,
) -> StoredBatch:
    """Store scored records in the session's transaction; return their ids in record order.

    `records` hold the contract's features and optionally the customer id; `labels` (0/1) and
    `probabilities` (of churn, 0..1) are in record order; `reasons`, when given, holds per record
    the values of db.models.REASON_COLUMNS (model.reasons.stored_values: three (feature name,
    contribution to the logit) pairs, largest first, then the sum of the other contributions).
    With a `batch_key` already stored, nothing is written and the stored batch's ids come back
    with `replayed=True` (a concurrent request with the same key waits here until the first one
    commits). `created_at` (default: the
    transaction time) lets the demo-history command write the past.
    Raises ValueError (mismatched lengths, unknown source) before writing anything, and
    psycopg.IntegrityError when the database refuses a row (the transaction is then unusable).
    """
    if not len(records) == len(labels) == len(probabilities) or (
        reasons is not None and len(reasons) != len(records)
    ):
        raise ValueError(
            f"{len(records)} records, {len(labels)} labels, {len(probabilities)} probabilities, "
            f"{'no' if reasons is None else len(reasons)} reason rows"
        )
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: one of {list(SOURCES)}")
    if created_at is not None:
        _ensure_partition_of(session, created_at)
    if batch_key is not None and not _claim_batch_key(session, batch_key, file_name, len(records)):
        return StoredBatch(ids=_stored_batch_ids(session, batch_key), replayed=True)
    columns = list(STORED_COLUMNS)
    if reasons is not None:
        columns.extend(REASON_COLUMNS)
    tail = (created_at,) if created_at is not None else ()
    if created_at is not None:
        columns.append("created_at")
    rows = [
        _stored_row(source, file_name, batch_key, model_version, record, label, probability, reason, tail)
        for record, label, probability, reason in zip(
            records, labels, probabilities, reasons if reasons is not None else [()] * len(records),
            strict=True,
        )
    ]
    if len(rows) <= INSERT_UP_TO_ROWS:
        return StoredBatch(ids=_insert_rows(session, columns, rows), replayed=False)
    ids = _draw_ids(session, len(rows))
    _copy_rows(session, ["id", *columns], ((id_, *row) for id_, row in zip(ids, rows, strict=True)))
    return StoredBatch(ids=ids, replayed=False)


async def store_one_prediction(
    engine: AsyncEngine,
    *,
    source: str,
    record: Mapping[str, Any],
    label: int,
    probability: float,
    reasons: Sequence[Any],
    model_version: str,
    file_name: str | None = None,
) -> int:
    """Store one scored record, committed, in one round trip to the database; return its id.

    For a single record without a batch key (the webapp's form, an API client's one record):
    create_predictions in a session, then a commit, took three round trips (BEGIN, the INSERT,
    COMMIT) in a worker thread. Here the one INSERT ... RETURNING is awaited on a connection of
    `engine` (db.session.new_async_engine: autocommit, so the statement is a transaction of its own:
    all of it is stored or none). `reasons` is the record's row of model.reasons.stored_values.
    Raises ValueError (unknown source) before writing; sqlalchemy.exc.OperationalError (database
    down at connect), sqlalchemy.exc.TimeoutError (no pooled connection in time),
    psycopg.OperationalError (lost mid-statement) and psycopg.IntegrityError store nothing.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: one of {list(SOURCES)}")
    row = _stored_row(source, file_name, None, model_version, record, label, probability, reasons, ())
    pooled = await engine.raw_connection()  # the bare pooled connection: a quarter of connect()'s cost
    try:
        driver = cast(psycopg.AsyncConnection[Any], pooled.driver_connection)
        cursor = await driver.execute(_insert_statement((*STORED_COLUMNS, *REASON_COLUMNS)), row)
        stored = await cursor.fetchone()
    finally:
        pooled.close()  # back to the pool (no reset: db.session.new_async_engine)
    assert stored is not None  # INSERT ... RETURNING of one row returns one row
    return int(stored[0])


def _stored_row(
    source: str, file_name: str | None, batch_key: str | None, model_version: str,
    record: Mapping[str, Any], label: int, probability: float, reason: Sequence[Any], tail: tuple[Any, ...],
) -> tuple[Any, ...]:
    """One record's values in the order of STORED_COLUMNS, then the reason columns and `tail`."""
    return (source, file_name, batch_key, model_version, label, probability,
            record.get(IDENTIFIER), *map(record.get, FEATURE_NAMES), *reason, *tail)


def _ensure_partition_of(session: Session, created_at: datetime) -> None:
    """The month of an explicit `created_at` (the past, for the demo history) gets its partition
    before the rows go in: without it they would land in the default partition (kept, but moved
    into their month only by the next maintenance). One round trip; rows written now need none
    (the maintenance keeps months ahead)."""
    ensure_partitions(session=session, first_at=created_at, last_at=created_at)


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
    """`count` fresh ids from the table's sequence, in one query returning one array.

    The sequence is named by a parameter: looked up inside the query, PostgreSQL resolved it
    once per row (10,000 ids: 27 ms, against 4 ms this way).
    """
    if count == 0:
        return []
    with _driver_connection(session).cursor() as cursor:
        if not _id_sequence:
            cursor.execute("SELECT pg_get_serial_sequence('predictions', 'id')")
            _id_sequence.append(cursor.fetchone()[0])  # type: ignore[index]
        cursor.execute(DRAW_IDS, (_id_sequence[0], count))
        row = cursor.fetchone()
    assert row is not None
    return sorted(row[0])


@lru_cache(maxsize=4)
def _insert_statement(columns: tuple[str, ...]) -> str:
    """The INSERT ... RETURNING id of these columns, rendered once: a `sql.Composed` is turned into
    bytes again at every execute (some 140 small objects for 30 columns: a third of a one-record
    request's CPU in psycopg), a string is looked up in psycopg's own cache of parsed queries."""
    return sql.SQL("INSERT INTO predictions ({}) VALUES ({}) RETURNING id").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    ).as_string()


@lru_cache(maxsize=4)
def _copy_statement(columns: tuple[str, ...]) -> sql.Composed:
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    return sql.SQL("COPY predictions ({}) FROM STDIN (FORMAT BINARY)").format(names)


@lru_cache(maxsize=4)
def binary_copy_types(columns: tuple[str, ...]) -> list[int]:
    """The type oid of each column, from the model: a binary COPY sends every value in its column's
    exact type (an int into a smallint column must go as int2)."""
    names = (re.sub(r"\(.*\)", "", PREDICTIONS.c[c].type.compile(dialect=postgresql.dialect())).lower()
             for c in columns)
    return [psycopg.adapters.types[name].oid for name in names]


def _insert_rows(session: Session, columns: list[str], rows: list[tuple[Any, ...]]) -> list[int]:
    """Few rows: INSERT ... RETURNING id, all in one pipelined round trip, results in row order.

    One row: a plain execute. The pipeline's exit waits for one more answer (its Sync), and the
    transaction's BEGIN goes alone first either way: a one-row store and commit took 0.52 ms
    plain against 0.61 ms pipelined (medians of 1,200 alternated, on the loaded machine)."""
    statement = _insert_statement(tuple(columns))
    with _driver_connection(session).cursor() as cursor:
        if len(rows) == 1:
            cursor.execute(statement, rows[0])
            return [cursor.fetchone()[0]]  # type: ignore[index]
        cursor.executemany(statement, rows, returning=True)
        return [row[0] for _ in cursor.results() for row in cursor.fetchall()]


def _copy_rows(session: Session, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """Many rows: one COPY (no RETURNING there, hence the ids drawn beforehand).

    Binary format: the text format spent most of its time writing floats as text; on 10,000
    rows with reason codes the client's CPU for the COPY went from ~44 ms to ~7 ms
    (bench/bench_api_batch.py measures the whole request).
    """
    statement = _copy_statement(tuple(columns))
    with _driver_connection(session).cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(binary_copy_types(tuple(columns)))
        for row in rows:
            copy.write_row(row)


def _driver_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under the session: the raw write joins the session's transaction."""
    return session.connection().connection.driver_connection  # type: ignore[return-value]


def _stored_batch_ids(session: Session, batch_key: str) -> list[int]:
    return list(session.scalars(
        select(PREDICTIONS.c.id).where(PREDICTIONS.c.batch_key == batch_key).order_by(PREDICTIONS.c.id)
    ))


def reason_codes(stored: Sequence[Any], features: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Reason codes from their stored values (a row of model.reasons.stored_values, REASON_COLUMNS'
    order), largest first, each {feature, value, contribution} with the feature's value in
    `features`; an empty list for a prediction stored before reason codes existed.

    Indexed pairs rather than zip over slices: 30 % less time on a 10,000-record answer."""
    return [
        {"feature": stored[name], "value": features.get(stored[name]), "contribution": stored[value]}
        for name, value in REASON_PAIRS
        if stored[name] is not None
    ]


def find_batch(*, session: Session, batch_key: str) -> list[dict[str, Any]] | None:
    """The stored predictions of a batch key (`stored_prediction` dicts), in request order; None
    when the key is unknown."""
    if session.get(PredictionBatch, batch_key) is None:
        return None
    rows = session.execute(
        select(PREDICTIONS).where(PREDICTIONS.c.batch_key == batch_key).order_by(PREDICTIONS.c.id)
    )
    return [stored_prediction(row) for row in _mappings(rows)]


def stored_prediction(row: Mapping[str, Any]) -> dict[str, Any]:
    """A predictions row as readers use it: id, created_at, source, file_name, batch_key,
    model_version, predicted_label (0/1), churn_probability, customer_id, `reasons` (a list, see
    `reason_codes`), rest_contribution (None before reason codes) and `features` (name -> value)."""
    features = {name: row[name] for name in FEATURE_NAMES}
    return {
        "id": row["id"], "created_at": row["created_at"], "source": row["source"],
        "file_name": row["file_name"], "batch_key": row["batch_key"], "model_version": row["model_version"],
        "predicted_label": row["predicted_label"], "churn_probability": row["churn_probability"],
        "customer_id": row[IDENTIFIER], "reasons": reason_codes([row[c] for c in REASON_COLUMNS], features),
        "rest_contribution": row["rest_contribution"], "features": features,
    }


def _mappings(result: Result[Any]) -> list[Mapping[str, Any]]:
    # RowMapping is a Mapping keyed by column name; its stubs type the keys loosely
    return cast("list[Mapping[str, Any]]", list(result.mappings()))


def count_predictions(*, session: Session, start: datetime, end: datetime, source: str | None) -> int:
    """How many predictions were created in [start, end), of one source or (None) of all."""
    return session.execute(count_query(start, end, source)).scalar_one()


def list_predictions(
    *, session: Session, start: datetime, end: datetime, source: str | None, limit: int, offset: int,
) -> list[dict[str, Any]]:
    """Stored predictions (`stored_prediction` dicts) created in [start, end), newest first (the
    created_at, id index; only the months of the window are read)."""
    rows = session.execute(page_query(start, end, source, limit, offset))
    return [stored_prediction(row) for row in _mappings(rows)]


def delete_predictions(*, session: Session, batch_key_prefix: str) -> int:
    """Delete the batches whose key starts with `batch_key_prefix`, with their predictions.

    Returns the number of predictions deleted. The prefix is matched literally (`%` and `_` in it
    are not wildcards). Used by the demo-history command to remove exactly what it wrote.
    """
    deleted = session.execute(
        delete(Prediction).where(Prediction.batch_key.startswith(batch_key_prefix, autoescape=True))
    )
    session.execute(
        delete(PredictionBatch).where(PredictionBatch.batch_key.startswith(batch_key_prefix, autoescape=True))
    )
    return cast("CursorResult[Any]", deleted).rowcount  # DML: a CursorResult at run time


def count_query(start: datetime, end: datetime, source: str | None) -> Select[Any]:
    """The count behind `count_predictions` (tests check its plan uses an index)."""
    return select(func.count()).select_from(PREDICTIONS).where(*_window(start, end, source))


def page_query(start: datetime, end: datetime, source: str | None, limit: int, offset: int) -> Select[Any]:
    """The page behind `list_predictions`, newest first (tests check its plan uses an index)."""
    return (
        select(PREDICTIONS)
        .where(*_window(start, end, source))
        .order_by(PREDICTIONS.c.created_at.desc(), PREDICTIONS.c.id.desc())
        .limit(limit)
        .offset(offset)
    )


def _window(start: datetime, end: datetime, source: str | None) -> list[Any]:
    conditions = [PREDICTIONS.c.created_at >= start, PREDICTIONS.c.created_at < end]
    if source is not None:
        conditions.append(PREDICTIONS.c.source == source)
    return conditions

