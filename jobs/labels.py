"""Outcomes come back: label files read, validated, stored and joined to the predictions they judge.

A label file is a CSV with three columns: `customer_id`, `churn` (`Yes` / `No`) and `known_at`,
when the outcome became known: an ISO date (`2026-03-01`, read as 00:00 UTC that day) or date and
time (`2026-03-01T10:15:00Z`; without an offset, UTC). The `label_ingestion` DAG ingests every
file of LABELS_DIR (hidden files are writes in progress), one transaction per file.

The rules (also in the README):
- **Invalid rows** (a missing column, an empty or too long customer id, a churn other than
  Yes/No, a time that is not a date, or one in the future) are set aside in LABELS_BAD_DIR under
  the file's name with an `_errors` column; the valid rows are stored.
- **Duplicate**: the same customer, time and outcome again (in the file, or already stored) is
  stored once and counted as a duplicate.
- **Contradictory**: the same customer and time with the other outcome. Inside one file, every
  such row is set aside (no way to tell which is right). Against a stored label, the stored one
  stays (first known wins; a correction is a new row with a later `known_at`) and the new row is
  set aside naming the stored outcome.
- **Partial**: a file may hold any subset of customers; coverage (labelled predictions /
  predictions) is reported per window in `realized_performance`.
- **Late**: a label is joined by its `known_at`, never by when the file arrived, to the
  customer's latest prediction made at or before `known_at`. A late file revises the realized
  performance of past windows (recomputed after every file). A label with no prediction before
  it is stored unmatched (counted in `label_files.matched_rows`).
- Several labels of one customer may reach the same prediction: the earliest one judges it.
- A file ingested before (same name and SHA-256) is not ingested again; it is moved aside.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from core.error_types import ErrorType
from core.files import UnreadableFileError, list_visible_files, write_atomic
from core.reader import read_customer_file
from core.settings import LabelSettings
from model.contract import IDENTIFIER, IDENTIFIER_MAX_LENGTH

LABEL_COLUMNS = (IDENTIFIER, "churn", "known_at")
LABEL_SCHEMA: dict[str, Any] = {"properties": {column: {"type": "string"} for column in LABEL_COLUMNS}}
"""What the shared reader needs to know of a label file: three text columns."""
ROW_NUMBER_COLUMN, READER_PROBLEM_COLUMN, RAW_COLUMN = "_row", "_reader_problem", "_raw"
OUTCOMES = {"Yes": 1, "No": 0}
CONTRADICTORY = "contradictory_label"
# clocks differ a little between the machine that writes labels and this one
FUTURE_TOLERANCE = timedelta(minutes=5)
log = logging.getLogger(__name__)



@dataclass(frozen=True)
class LabelRow:
    customer_id: str
    churn: int  # 1 = churned
    known_at: datetime
    line: int  # the row's line in the file (header = 1), for messages and the bad file


@dataclass
class LabelValidation:
    """Valid rows to store, invalid ones with their reasons, and the counts per (error, column)."""

    rows: int
    valid: list[LabelRow]
    invalid: dict[int, list[str]]  # position -> reasons "<error type>:<column>"
    duplicates: int = 0
    errors: Counter[str] = field(default_factory=Counter)


class UnreadableLabelFileError(ValueError):
    """The file cannot be read as label rows (empty, binary, not UTF-8, not a CSV)."""


def list_label_files(labels_dir: Path) -> list[Path]:
    """Every visible file of the labels folder, by name (hidden: being written, or processed)."""
    return list_visible_files(labels_dir)


def ingest_waiting_label_files(dag_run_id: str | None = None,
                               settings: LabelSettings | None = None) -> list[LabelFileReport] | None:
    """Ingest every label file waiting in LABELS_DIR, oldest name first; None when there is none
    (the DAG's run is then skipped). Each file is its own transaction (`ingest_label_file`)."""
    settings = settings or LabelSettings()
    files = list_label_files(settings.labels_dir)
    if not files:
        return None
    return [ingest_label_file(path, settings=settings, dag_run_id=dag_run_id) for path in files]


def read_label_file(path: Path) -> pd.DataFrame:
    """The file's rows as text (empty cells as ""), or UnreadableLabelFileError saying why not.

    Read by the one reader of customer files (core/reader.py), with the same rules: encodings,
    delimiters, line endings, blank lines, header names normalised, every cell text ("NA" is an
    id), a row whose field count differs from the header is that row's error. Two columns are
    added: ROW_NUMBER_COLUMN (the row as a spreadsheet shows it) and READER_PROBLEM_COLUMN (why
    the reader could not split the row, empty when it could), and RAW_COLUMN (such a row's fields as
    written, so nothing of it is lost when it is set aside).
    """
    try:
        read = read_customer_file(path.read_bytes(), LABEL_SCHEMA)
    except UnreadableFileError as error:
        raise UnreadableLabelFileError(f"{path.name}: {error.detail}") from error
    if not set(read.columns) & set(LABEL_COLUMNS):
        raise UnreadableLabelFileError(
            f"{path.name}: the header names none of {', '.join(LABEL_COLUMNS)}: wrong delimiter "
            "or not a label file")
    records = [
        {
            **{column: row.cells.get(column) or "" for column in read.columns},
            ROW_NUMBER_COLUMN: row.number,
            READER_PROBLEM_COLUMN: "; ".join(problem for column, problem in row.problems if column is None),
            RAW_COLUMN: read.delimiter.join(row.raw) if row.malformed else "",
        }
        for row in read.rows
    ]
    return pd.DataFrame(
        records, columns=[*read.columns, ROW_NUMBER_COLUMN, READER_PROBLEM_COLUMN, RAW_COLUMN],
    )


def parse_known_at(text: str) -> datetime:
    """An ISO date (00:00 UTC that day) or date-time (UTC unless an offset is given); ValueError else."""
    value = text.strip()
    if not value:
        raise ValueError("empty")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def validate_labels(frame: pd.DataFrame, now: datetime | None = None) -> LabelValidation:
    """Check each row; then duplicates and contradictions inside the file (see the module rules)."""
    now = now or datetime.now(UTC)
    result = LabelValidation(rows=len(frame), valid=[], invalid={})
    missing = [c for c in LABEL_COLUMNS if c not in frame.columns]
    if missing:
        for position in range(len(frame)):
            result.invalid[position] = [f"{ErrorType.MISSING_COLUMN}:{c}" for c in missing]
        result.errors.update({f"{ErrorType.MISSING_COLUMN}:{c}": len(frame) for c in missing})
        return result
    candidates: list[tuple[int, LabelRow]] = []
    numbers = frame[ROW_NUMBER_COLUMN].tolist() if ROW_NUMBER_COLUMN in frame else range(2, len(frame) + 2)
    problems = frame[READER_PROBLEM_COLUMN].tolist() if READER_PROBLEM_COLUMN in frame else [""] * len(frame)
    for position, (customer, churn, known) in enumerate(frame[list(LABEL_COLUMNS)].itertuples(index=False)):
        if problems[position]:  # the row's fields do not match the header: nothing to read in it
            reasons = [f"{ErrorType.MALFORMED_ROW}:row"]
            result.invalid[position] = reasons
            result.errors.update(reasons)
            continue
        reasons = _row_problems(str(customer).strip(), str(churn).strip(), str(known), now)
        if reasons:
            result.invalid[position] = reasons
            result.errors.update(reasons)
        else:
            candidates.append((position, LabelRow(str(customer).strip(), OUTCOMES[str(churn).strip()],
                                                  parse_known_at(str(known)), line=int(numbers[position]))))
    _resolve_in_file(candidates, result)
    return result


def _row_problems(customer: str, churn: str, known: str, now: datetime) -> list[str]:
    reasons = []
    if not customer:
        reasons.append(f"{ErrorType.MISSING_VALUE}:{IDENTIFIER}")
    elif len(customer) > IDENTIFIER_MAX_LENGTH:
        reasons.append(f"{ErrorType.OUT_OF_RANGE}:{IDENTIFIER}")
    if not churn:
        reasons.append(f"{ErrorType.MISSING_VALUE}:churn")
    elif churn not in OUTCOMES:
        reasons.append(f"{ErrorType.UNKNOWN_CATEGORY}:churn")
    if not known.strip():
        reasons.append(f"{ErrorType.MISSING_VALUE}:known_at")
    else:
        try:
            if parse_known_at(known) > now + FUTURE_TOLERANCE:
                reasons.append(f"{ErrorType.OUT_OF_RANGE}:known_at")
        except ValueError:
            reasons.append(f"{ErrorType.WRONG_TYPE}:known_at")
    return reasons


def _resolve_in_file(candidates: list[tuple[int, LabelRow]], result: LabelValidation) -> None:
    """Same (customer, time): same outcome -> one stored, the rest duplicates; outcomes differ ->
    every row of that key set aside as contradictory."""
    by_key: dict[tuple[str, datetime], list[tuple[int, LabelRow]]] = {}
    for position, row in candidates:
        by_key.setdefault((row.customer_id, row.known_at), []).append((position, row))
    for group in by_key.values():
        if len({row.churn for _, row in group}) > 1:
            for position, _ in group:
                result.invalid[position] = [f"{CONTRADICTORY}:churn"]
            result.errors[f"{CONTRADICTORY}:churn"] += len(group)
            continue
        result.valid.append(group[0][1])
        result.duplicates += len(group) - 1
    result.valid.sort(key=lambda row: row.line)


@dataclass(frozen=True)
class LabelFileReport:
    """What one label file became (also the `label_files` row)."""

    file_name: str
    rows: int
    stored: int
    invalid: int
    duplicates: int
    contradictory: int
    matched: int
    outcome: str
    bad_file: str | None
    already_ingested: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ingest_label_file(path: Path, *, settings: LabelSettings | None = None,
                      dag_run_id: str | None = None, now: datetime | None = None) -> LabelFileReport:
    """Validate, store (one transaction) and set aside the bad rows of one label file, then move it
    to the processed folder. A crash before the move is safe: the rerun finds the file's row
    (same name and checksum) and only moves it."""
    from db.labels import find_label_file, store_label_file
    from db.session import session_scope

    settings = settings or LabelSettings()
    checksum = file_checksum(path)
    with session_scope() as session:
        known = find_label_file(session=session, file_name=path.name, checksum=checksum)
    if known is not None:
        _move_processed(path, settings)
        return LabelFileReport(**{**known, "already_ingested": True})
    try:
        frame = read_label_file(path)
    except UnreadableLabelFileError as error:
        bad = _write_bad_bytes(path, settings)
        with session_scope() as session:
            stored = store_label_file(
                session=session, file_name=path.name, checksum=checksum, dag_run_id=dag_run_id, rows=[],
                total_rows=0, invalid_rows=0, duplicates=0,
                errors={f"{ErrorType.UNREADABLE_FILE}:": 1}, outcome="unreadable",
            )
        log.warning("%s", error)
        _move_processed(path, settings)
        return LabelFileReport(**{**stored.to_dict(), "bad_file": str(bad)})
    checked = validate_labels(frame, now)
    with session_scope() as session:
        stored = store_label_file(
            session=session, file_name=path.name, checksum=checksum, dag_run_id=dag_run_id,
            rows=checked.valid, total_rows=checked.rows, invalid_rows=len(checked.invalid),
            duplicates=checked.duplicates, errors=dict(checked.errors), outcome=None,
            contradictory_in_file=checked.errors.get(f"{CONTRADICTORY}:churn", 0),
        )
    reasons = dict(checked.invalid)
    for line, stored_churn in stored.contradicted.items():  # a stored label says otherwise
        reasons[line - 2] = [f"{CONTRADICTORY}:churn (stored label: "
                             f"{'Yes' if stored_churn else 'No'})"]
    bad_rows = _write_bad_rows(frame, reasons, path.name, settings) if reasons else None
    _move_processed(path, settings)
    return LabelFileReport(**{**stored.to_dict(), "bad_file": str(bad_rows) if bad_rows else None})


def _write_bad_rows(frame: pd.DataFrame, reasons: dict[int, list[str]], name: str,
                    settings: LabelSettings) -> Path:
    rows = frame.iloc[sorted(reasons)].copy()
    rows["_errors"] = ["; ".join(reasons[p]) for p in sorted(reasons)]
    return _write_atomic(settings.labels_bad_dir / name, rows.to_csv(index=False).encode())


def _write_bad_bytes(path: Path, settings: LabelSettings) -> Path:
    return _write_atomic(settings.labels_bad_dir / path.name, path.read_bytes())


def _write_atomic(target: Path, data: bytes) -> Path:
    write_atomic({target: data})
    return target


def _move_processed(path: Path, settings: LabelSettings) -> None:
    settings.processed_dir.mkdir(parents=True, exist_ok=True)
    os.replace(path, settings.processed_dir / path.name)
