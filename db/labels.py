"""Labels (known outcomes): stored per file, joined to the prediction each one judges.

The join rule: a label of customer C known at T judges C's latest prediction made at or before T
(`labels.prediction_id`, set when the label is stored; a prediction is never made in the past,
so the match cannot change later). When several labels reach one prediction, the earliest judges it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pandas as pd
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from db.models import LabelFile
from model.contract import FEATURE_NAMES, IDENTIFIER


class LabelRowLike(Protocol):
    """A valid label row (jobs/labels.py's LabelRow): read-only attributes."""

    @property
    def customer_id(self) -> str: ...
    @property
    def churn(self) -> int: ...
    @property
    def known_at(self) -> datetime: ...
    @property
    def line(self) -> int: ...


@dataclass
class StoredLabelFile:
    """The `label_files` row of a file, and the lines contradicted by a stored label (line -> churn)."""

    id: int
    file_name: str
    rows: int
    stored: int
    invalid: int
    duplicates: int
    contradictory: int
    matched: int
    outcome: str
    notes: list[str] = field(default_factory=list)
    contradicted: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("contradicted", "id")}


INSERT_LABELS = text("""
    INSERT INTO labels (customer_id, churn, known_at, label_file_id)
    SELECT customer_id, churn, known_at, :file_id
    FROM unnest(CAST(:customers AS text[]), CAST(:churns AS smallint[]), CAST(:times AS timestamptz[]))
         AS t(customer_id, churn, known_at)
    ON CONFLICT (customer_id, known_at) DO NOTHING
    RETURNING customer_id, known_at
""")
STORED_OUTCOMES = text("""
    SELECT customer_id, known_at, churn FROM labels
    WHERE (customer_id, known_at) IN (
        SELECT * FROM unnest(CAST(:customers AS text[]), CAST(:times AS timestamptz[])))
""")
MATCH_PREDICTIONS = text(f"""
    UPDATE labels AS l SET prediction_id = (
        SELECT p.id FROM predictions AS p
        WHERE p.{IDENTIFIER} = l.customer_id AND p.created_at <= l.known_at
        ORDER BY p.created_at DESC, p.id DESC LIMIT 1)
    WHERE l.label_file_id = :file_id
    RETURNING l.prediction_id
""")


def find_label_file(*, session: Session, file_name: str, checksum: str) -> dict[str, Any] | None:
    """The statistics of a file ingested before (same name and checksum), or None."""
    row = session.scalars(select(LabelFile).where(
        LabelFile.file_name == file_name, LabelFile.checksum == checksum)).first()
    if row is None:
        return None
    return {"file_name": row.file_name, "rows": row.rows, "stored": row.stored_rows,
            "invalid": row.invalid_rows, "duplicates": row.duplicate_rows,
            "contradictory": row.contradictory_rows, "matched": row.matched_rows,
            "outcome": row.outcome, "notes": list(row.notes),
            "bad_file": None if row.bad_file is None else row.bad_file}


def store_label_file(
    *, session: Session, file_name: str, checksum: str, dag_run_id: str | None, rows: Sequence[LabelRowLike],
    total_rows: int, invalid_rows: int, duplicates: int, errors: dict[str, int], outcome: str | None,
    contradictory_in_file: int = 0, notes: Sequence[str] = (),
) -> StoredLabelFile:
    """Store a file's valid labels and its statistics in one transaction; join them to predictions.

    `rows` are the file's valid rows (already free of in-file duplicates); `invalid_rows` counts the
    rows set aside by validation, of which `contradictory_in_file` for in-file contradictions.
    A row whose (customer, time) is stored already is a duplicate (same outcome) or contradicted
    (the other outcome: the stored one stays, its line is returned in `contradicted`).
    `notes`: what a reader of the statistics must know (how times were read); a note is added when
    new labels match no prediction, and the outcome is then `unmatched` rather than `good`.
    """
    record = LabelFile(file_name=file_name, checksum=checksum, dag_run_id=dag_run_id,
                       rows=total_rows, stored_rows=0, invalid_rows=0, duplicate_rows=0,
                       contradictory_rows=0, matched_rows=0, outcome="bad", errors=errors,
                       notes=list(notes))
    session.add(record)
    session.flush()
    inserted = _insert(session, record.id, rows)
    contradicted, more_duplicates = _compare_with_stored(session, rows, inserted)
    matched = sum(1 for (pid,) in session.execute(MATCH_PREDICTIONS, {"file_id": record.id})
                  if pid is not None)
    record.stored_rows, record.matched_rows = len(inserted), matched
    record.duplicate_rows = duplicates + more_duplicates
    record.contradictory_rows = contradictory_in_file + len(contradicted)
    record.invalid_rows = invalid_rows - contradictory_in_file
    if contradicted:
        record.errors = {**errors, "contradictory_label:churn":
                         errors.get("contradictory_label:churn", 0) + len(contradicted)}
    record.outcome = outcome or _outcome(total_rows, len(inserted) + record.duplicate_rows,
                                         invalid_rows + len(contradicted))
    if inserted and matched < len(inserted):
        record.notes = [*record.notes, (
            f"no new label matched a prediction ({len(inserted)} stored): no prediction of these "
            "customers was made at or before their known_at" if matched == 0 else
            f"{len(inserted) - matched} of {len(inserted)} new labels matched no prediction")]
        if matched == 0 and record.outcome == "good":
            record.outcome = "unmatched"
    return StoredLabelFile(
        id=record.id, file_name=file_name, rows=total_rows, stored=len(inserted),
        invalid=record.invalid_rows, duplicates=record.duplicate_rows,
        contradictory=record.contradictory_rows, matched=matched, outcome=record.outcome,
        notes=list(record.notes), contradicted=contradicted,
    )


def record_label_file_outputs(*, session: Session, file_id: int, bad_file: str) -> None:
    """Record the name of the file's set-aside rows (in LABELS_BAD_DIR) on its `label_files` row."""
    session.execute(update(LabelFile).where(LabelFile.id == file_id).values(bad_file=bad_file))


def _insert(session: Session, file_id: int, rows: Sequence[LabelRowLike]) -> set[tuple[str, datetime]]:
    if not rows:
        return set()
    result = session.execute(INSERT_LABELS, {
        "file_id": file_id, "customers": [r.customer_id for r in rows],
        "churns": [r.churn for r in rows], "times": [r.known_at for r in rows]})
    return {(customer, known_at) for customer, known_at in result}


def _compare_with_stored(
    session: Session, rows: Sequence[LabelRowLike], inserted: set[tuple[str, datetime]],
) -> tuple[dict[int, int], int]:
    others = [r for r in rows if (r.customer_id, r.known_at) not in inserted]
    if not others:
        return {}, 0
    stored = {(c, t): churn for c, t, churn in session.execute(STORED_OUTCOMES, {
        "customers": [r.customer_id for r in others], "times": [r.known_at for r in others]})}
    contradicted = {r.line: stored[(r.customer_id, r.known_at)] for r in others
                    if stored[(r.customer_id, r.known_at)] != r.churn}
    return contradicted, len(others) - len(contradicted)


def _outcome(rows: int, kept: int, set_aside: int) -> str:
    if rows == 0:
        return "bad"
    if set_aside == 0:
        return "good"
    return "bad" if kept == 0 else "mixed"


# --- reads for realized performance, retraining and the gate --------------------------------------

JUDGED_PREDICTIONS = f"""
    SELECT DISTINCT ON (p.id) p.id AS prediction_id, p.created_at, p.model_version,
           p.predicted_label, p.churn_probability, l.churn AS outcome, l.received_at,
           p.{IDENTIFIER}, {", ".join(f"p.{f}" for f in FEATURE_NAMES)}
    FROM labels AS l JOIN predictions AS p ON p.id = l.prediction_id
    ORDER BY p.id, l.known_at
"""


def labelled_predictions(
    *, session: Session, start: datetime | None = None, end: datetime | None = None,
) -> pd.DataFrame:
    """Every prediction judged by a label (the earliest one), with its features and the outcome
    (1 = churned), made in [start, end) when given."""
    query = f"SELECT * FROM ({JUDGED_PREDICTIONS}) AS judged WHERE TRUE"
    params: dict[str, Any] = {}
    if start is not None:
        query += " AND created_at >= :start"
        params["start"] = start
    if end is not None:
        query += " AND created_at < :end"
        params["end"] = end
    return pd.read_sql(text(query + " ORDER BY prediction_id"), session.connection(), params=params)


def count_predictions_per_window(*, session: Session, window_minutes: int) -> pd.DataFrame:
    """Predictions and labelled predictions per (model_version, window start), windows of
    `window_minutes` from the epoch: columns model_version, window_start, predictions, labelled."""
    seconds = window_minutes * 60
    query = text(f"""
        SELECT p.model_version,
               to_timestamp(floor(extract(epoch FROM p.created_at) / {seconds}) * {seconds}) AS window_start,
               count(*) AS predictions,
               count(*) FILTER (WHERE EXISTS (SELECT 1 FROM labels l WHERE l.prediction_id = p.id))
               AS labelled
        FROM predictions AS p GROUP BY 1, 2
    """)
    return pd.read_sql(query, session.connection())


def count_labels_received_since(*, session: Session, since: datetime) -> int:
    """Labels stored after `since` that judge a prediction (what retraining waits for)."""
    return int(session.execute(text(
        "SELECT count(*) FROM labels WHERE received_at > :since AND prediction_id IS NOT NULL"),
        {"since": since}).scalar_one())


def customers_awaiting_label(
    *, session: Session, predicted_before: datetime, limit: int = 10_000,
) -> list[tuple[str, datetime]]:
    """Customers predicted at or before `predicted_before` who have no stored label yet.

    Returns (customer_id, time of the customer's latest prediction up to then), oldest first, at
    most `limit`. What `scripts/seed_labels.py` writes outcomes for (demo and `make run`).
    """
    rows = session.execute(text("""
            SELECT p.customer_id, max(p.created_at) AS predicted_at
            FROM predictions p
            WHERE p.customer_id IS NOT NULL AND p.created_at <= :cutoff
              AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.customer_id = p.customer_id)
            GROUP BY p.customer_id ORDER BY predicted_at LIMIT :limit"""),
        {"cutoff": predicted_before, "limit": limit})
    return [(row.customer_id, row.predicted_at) for row in rows]
