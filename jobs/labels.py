"""Outcomes come back: label files read, validated, stored and joined to the predictions they judge.

A label file is a CSV with three columns: `customer_id`, `churn` (`Yes` / `No`) and `known_at`,
when the outcome became known: a date and time (`2026-03-01T10:15:00+09:00`, `...Z`) or a date
(`2026-03-01`). A time written without an offset is read in LABELS_TIMEZONE (an IANA zone, UTC by
default), and the file's notes say how many were. A date-only `known_at` means "known that day":
it judges the customer's latest prediction made up to the end of that day in LABELS_TIMEZONE
(stored as 23:59:59.999999 local), and today's date is never "future". The `label_ingestion` DAG
ingests every file of LABELS_DIR (hidden files are writes in progress), one transaction per file.

The rules (also in the README):
- **Invalid rows** (a missing column, an empty or too long customer id, a churn other than
  Yes/No, a time that is not a date, or one in the future: later than the server's clock by more
  than 5 minutes, or a date after today in LABELS_TIMEZONE; the reason names both) are set aside
  in LABELS_BAD_DIR as `<stem>.<sha256[:12]>.csv` (the file's name plus the start of its
  content's SHA-256, so two files under one name never overwrite each other's rows) with `_row`
  (the line as a spreadsheet shows it, blank lines counted) and `_errors` columns; the valid rows
  are stored. The bad rows are written before the file's transaction commits: once a file is
  recorded, every one of its rows is either stored or set aside.
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
  it is stored unmatched (counted in `label_files.matched_rows`); a file none of whose new labels
  matches a prediction gets the outcome `unmatched` and a note saying so.
- Several labels of one customer may reach the same prediction: the earliest one judges it.
- A file ingested before (same name and SHA-256) is not ingested again; it is moved aside.
  Ingested files are moved to LABELS_DIR/.processed as `<stem>.<sha256[:12]>.csv` too.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from core.error_types import ErrorType
from core.files import UnreadableFileError, list_visible_files, write_atomic
from core.reader import read_customer_file
from core.settings import LabelSettings
from jobs.splitting import output_name
from model.contract import IDENTIFIER, IDENTIFIER_MAX_LENGTH

LABEL_COLUMNS = (IDENTIFIER, "churn", "known_at")
LABEL_SCHEMA: dict[str, Any] = {"properties": {column: {"type": "string"} for column in LABEL_COLUMNS}}
"""What the shared reader needs to know of a label file: three text columns."""
ROW_NUMBER_COLUMN, READER_PROBLEM_COLUMN, RAW_COLUMN = "_row", "_reader_problem", "_raw"
ERRORS_COLUMN = "_errors"
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
    invalid: dict[int, list[str]]  # position -> reasons "<error type>:<column>[ (detail)]"
    duplicates: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # "<error type>:<column>" -> rows
    without_offset: int = 0  # valid times read in LABELS_TIMEZONE
    date_only: int = 0  # valid dates: the whole day in LABELS_TIMEZONE


class UnreadableLabelFileError(ValueError):
    """The file cannot be read as label rows (empty, binary, not UTF-8, not a CSV)."""


def list_label_files(labels_dir: Path) -> list[Path]:
    """Every visible file of the labels folder, by name (hidden: being written, or processed)."""
    return list_visible_files(labels_dir)


def ingest_waiting_label_files(dag_run_id: str | None = None,
                               settings: LabelSettings | None = None) -> list[LabelFileReport] | None:
    """Ingest every label file waiting in LABELS_DIR, oldest name first; None when there is none
    (the DAG's ingest task is then skipped). Each file is its own transaction (`ingest_label_file`)."""
    settings = settings or LabelSettings()
    files = list_label_files(settings.labels_dir)
    if not files:
        return None
    return [ingest_label_file(path, settings=settings, dag_run_id=dag_run_id) for path in files]


def read_label_file(path: Path) -> pd.DataFrame:
    """The file's rows as text (empty cells as ""), or UnreadableLabelFileError saying why not.

    Read by the one reader of customer files (core/reader.py), with the same rules: encodings,
    delimiters, line endings, blank lines, header names normalised, every cell text ("NA" is an
    id), a row whose field count differs from the header is that row's error. Three columns are
    added: ROW_NUMBER_COLUMN (the row as a spreadsheet shows it, blank lines counted),
    READER_PROBLEM_COLUMN (why the reader could not split the row, empty when it could) and
    RAW_COLUMN (such a row's fields as written, so nothing of it is lost when it is set aside).
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


def labels_zone(settings: LabelSettings | None = None) -> ZoneInfo:
    """The zone of label times written without an offset (LABELS_TIMEZONE)."""
    return ZoneInfo((settings or LabelSettings()).labels_timezone)


def known_date(text: str) -> date | None:
    """The date of a date-only `known_at` (`2026-03-01`), None when the text holds a time too."""
    value = text.strip()
    if "T" in value or " " in value or ":" in value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse_known_at(text: str, zone: tzinfo = UTC) -> datetime:
    """When an outcome became known, in UTC; ValueError when the text is no ISO date or time.

    A date-time with an offset (`Z`, `+09:00`) is that instant; without one it is read in `zone`
    (LABELS_TIMEZONE). A date alone is the end of that day in `zone` (23:59:59.999999), so it
    judges every prediction made that day there.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty")
    day = known_date(value)
    if day is not None:
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone) - timedelta(microseconds=1)
        return end.astimezone(UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed).astimezone(UTC)


def validate_labels(frame: pd.DataFrame, now: datetime | None = None, zone: tzinfo = UTC) -> LabelValidation:
    """Check each row; then duplicates and contradictions inside the file (see the module rules).

    `zone`: LABELS_TIMEZONE, the zone of times without an offset; `now`: the server's clock.
    """
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
            found = [(f"{ErrorType.MALFORMED_ROW}:row", "")]
        else:
            found = _row_problems(str(customer).strip(), str(churn).strip(), str(known), now, zone)
        if found:
            result.invalid[position] = [key + (f" ({detail})" if detail else "") for key, detail in found]
            result.errors.update(key for key, _ in found)
            continue
        row = LabelRow(str(customer).strip(), OUTCOMES[str(churn).strip()], parse_known_at(str(known), zone),
                       line=int(numbers[position]))
        candidates.append((position, row))
        if known_date(str(known)) is not None:
            result.date_only += 1
        elif datetime.fromisoformat(str(known).strip().replace("Z", "+00:00")).tzinfo is None:
            result.without_offset += 1
    _resolve_in_file(candidates, result)
    return result


def _row_problems(customer: str, churn: str, known: str, now: datetime,
                  zone: tzinfo) -> list[tuple[str, str]]:
    """(error key, detail) per problem of one row; empty when the row is valid."""
    reasons = []
    if not customer:
        reasons.append((f"{ErrorType.MISSING_VALUE}:{IDENTIFIER}", ""))
    elif len(customer) > IDENTIFIER_MAX_LENGTH:
        reasons.append((f"{ErrorType.OUT_OF_RANGE}:{IDENTIFIER}", ""))
    if not churn:
        reasons.append((f"{ErrorType.MISSING_VALUE}:churn", ""))
    elif churn not in OUTCOMES:
        reasons.append((f"{ErrorType.UNKNOWN_CATEGORY}:churn", ""))
    if not known.strip():
        reasons.append((f"{ErrorType.MISSING_VALUE}:known_at", ""))
        return reasons
    try:
        future = _future_detail(known, now, zone)
    except ValueError:
        reasons.append((f"{ErrorType.WRONG_TYPE}:known_at", ""))
    else:
        if future:
            reasons.append((f"{ErrorType.OUT_OF_RANGE}:known_at", future))
    return reasons


def _future_detail(known: str, now: datetime, zone: tzinfo) -> str:
    """Why `known` lies in the future ("" when it does not), naming the zone and the server's
    clock; ValueError when it is no ISO date or time."""
    day = known_date(known)
    local_now = now.astimezone(zone)
    if day is not None:
        if day <= local_now.date():
            return ""
        return (f"future: the date {day} is after today ({local_now.date()}) in {zone} "
                f"(LABELS_TIMEZONE); server clock {now.astimezone(UTC).isoformat(timespec='seconds')}")
    instant = parse_known_at(known, zone)
    if instant <= now + FUTURE_TOLERANCE:
        return ""
    naive = datetime.fromisoformat(known.strip().replace("Z", "+00:00")).tzinfo is None
    read = f"read in {zone} (LABELS_TIMEZONE) as" if naive else "is"
    return (f"future: {known.strip()} {read} {instant.isoformat(timespec='seconds')}, later than the "
            f"server clock {now.astimezone(UTC).isoformat(timespec='seconds')} "
            f"({local_now.isoformat(timespec='seconds')} in {zone}) by more than "
            f"{int(FUTURE_TOLERANCE.total_seconds() // 60)} minutes")


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


def file_notes(checked: LabelValidation, zone: tzinfo) -> list[str]:
    """What a reader of the file's statistics must know about how its times were read."""
    notes = []
    if checked.without_offset:
        notes.append(f"{checked.without_offset} known_at times without an offset read in {zone} "
                     "(LABELS_TIMEZONE)")
    if checked.date_only:
        notes.append(f"{checked.date_only} date-only known_at values: each judges the predictions "
                     f"made up to the end of that day in {zone} (LABELS_TIMEZONE)")
    return notes


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
    notes: list[str] = field(default_factory=list)
    already_ingested: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ingest_label_file(path: Path, *, settings: LabelSettings | None = None,
                      dag_run_id: str | None = None, now: datetime | None = None) -> LabelFileReport:
    """Validate, store and set aside the bad rows of one label file (one transaction, the bad rows
    written before it commits), then move the file to the processed folder. A crash at any step is
    safe: before the commit nothing is recorded and the rerun does it all again (the same names);
    after it the rerun finds the file's row (same name and checksum) and only moves the file."""
    from db.labels import find_label_file, record_label_file_outputs, store_label_file
    from db.session import session_scope

    settings = settings or LabelSettings()
    data = path.read_bytes()
    checksum = hashlib.sha256(data).hexdigest()
    stored_name = output_name(path.name, data)  # <stem>.<sha256[:12]>.csv
    with session_scope() as session:
        known = find_label_file(session=session, file_name=path.name, checksum=checksum)
    if known is not None:
        _move_processed(path, stored_name, settings)
        bad = known["bad_file"] and str(settings.labels_bad_dir / known["bad_file"])
        return LabelFileReport(**{**known, "bad_file": bad or None, "already_ingested": True})
    try:
        frame = read_label_file(path)
    except UnreadableLabelFileError as error:
        log.warning("%s", error)
        with session_scope() as session:
            stored = store_label_file(
                session=session, file_name=path.name, checksum=checksum, dag_run_id=dag_run_id, rows=[],
                total_rows=0, invalid_rows=0, duplicates=0,
                errors={f"{ErrorType.UNREADABLE_FILE}:": 1}, outcome="unreadable", notes=[str(error)],
            )
            bad = _write_atomic(settings.labels_bad_dir / stored_name, data)
            record_label_file_outputs(session=session, file_id=stored.id, bad_file=bad.name)
        _move_processed(path, stored_name, settings)
        return LabelFileReport(**{**stored.to_dict(), "bad_file": str(bad)})
    zone = labels_zone(settings)
    checked = validate_labels(frame, now, zone)
    with session_scope() as session:
        stored = store_label_file(
            session=session, file_name=path.name, checksum=checksum, dag_run_id=dag_run_id,
            rows=checked.valid, total_rows=checked.rows, invalid_rows=len(checked.invalid),
            duplicates=checked.duplicates, errors=dict(checked.errors), outcome=None,
            contradictory_in_file=checked.errors.get(f"{CONTRADICTORY}:churn", 0),
            notes=file_notes(checked, zone),
        )
        reasons = dict(checked.invalid)
        position_of_line = {int(line): position for position, line in enumerate(frame[ROW_NUMBER_COLUMN])}
        for line, stored_churn in stored.contradicted.items():  # a stored label says otherwise
            reasons[position_of_line[line]] = [f"{CONTRADICTORY}:churn (stored label: "
                                               f"{'Yes' if stored_churn else 'No'})"]
        bad_rows = _write_bad_rows(frame, reasons, stored_name, settings) if reasons else None
        if bad_rows is not None:  # in the same transaction: recorded only once the rows are safe
            record_label_file_outputs(session=session, file_id=stored.id, bad_file=bad_rows.name)
    _move_processed(path, stored_name, settings)
    return LabelFileReport(**{**stored.to_dict(), "bad_file": str(bad_rows) if bad_rows else None})


def _write_bad_rows(frame: pd.DataFrame, reasons: dict[int, list[str]], name: str,
                    settings: LabelSettings) -> Path:
    """The rows at these positions of the frame, each with its reasons, as `name` in the bad folder."""
    positions = sorted(reasons)
    rows = frame.iloc[positions].copy()
    rows[ERRORS_COLUMN] = ["; ".join(reasons[p]) for p in positions]
    return _write_atomic(settings.labels_bad_dir / name, rows.to_csv(index=False).encode())


def _write_atomic(target: Path, data: bytes) -> Path:
    write_atomic({target: data})
    return target


def _move_processed(path: Path, stored_name: str, settings: LabelSettings) -> None:
    settings.processed_dir.mkdir(parents=True, exist_ok=True)
    os.replace(path, settings.processed_dir / stored_name)
