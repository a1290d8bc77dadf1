"""Scheduled predictions: every good_data file scored once, through the API, recorded in a ledger.

Exactly once per file: a file is known by its name and the SHA-256 of its bytes. It enters the
ledger (`predicted_files`) only after the API has stored every chunk of its rows, and each chunk
carries an idempotency key (`<file>:<checksum>:<chunk>`), so a run that fails halfway and is
retried stores no row twice. Files in good_data are only read, never moved or changed.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, overload

from sqlalchemy.orm import Session

from core.api_client import ApiRejectedError, ChurnApiClient
from core.cells import type_column
from core.collector import paused_cyclic_gc
from core.error_types import ErrorType
from core.files import UnreadableFileError, file_sha256, list_visible_files, write_atomic
from core.reader import CustomerFileStream, RowChunk, open_customer_file
from core.settings import PredictionJobSettings
from db.ledger import find_predicted_files, record_predicted_file
from db.session import session_scope
from model.contract import FEATURES, IDENTIFIER, record_json_schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GoodDataFile:
    """A good_data file as the ledger knows it: its name and the checksum of its bytes."""

    path: Path
    checksum: str

    @property
    def name(self) -> str:
        return self.path.name


class FilesNotPredictedError(RuntimeError):
    """Files the API refused as a whole (a 4xx naming no row); the others were predicted."""


def file_checksum(path: Path) -> str:
    return file_sha256(path)


def find_unpredicted_files(good_dir: Path, session: Session) -> list[GoodDataFile]:
    """The good_data files whose (name, checksum) the ledger does not hold yet."""
    files = [GoodDataFile(path, file_checksum(path)) for path in list_visible_files(good_dir)]
    if not files:
        return []
    predicted = find_predicted_files(session=session, file_names=[f.name for f in files])
    return [f for f in files if (f.name, f.checksum) not in predicted]


@dataclass(frozen=True)
class RefusedRow:
    """A row of a good_data file that is not predicted: its file row, why, and its fields as written."""

    row: int
    reasons: tuple[str, ...]
    raw: tuple[str, ...]


@dataclass
class FileRecords:
    """A good_data file as API records (`rows`: each record's file row; `raw`: its fields as
    written), plus the rows set aside."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    raw: Sequence[tuple[str, ...]] = field(default_factory=list)
    refused: list[RefusedRow] = field(default_factory=list)


class _RawOfRecords(Sequence[tuple[str, ...]]):
    """The fields as written of a chunk's records, made only when one is asked for (a row the
    API refuses): `positions[i]` is record i's position in the chunk."""

    def __init__(self, raw: Sequence[Sequence[str]], positions: list[int]) -> None:
        self._raw = raw
        self._positions = positions

    def __len__(self) -> int:
        return len(self._positions)

    @overload
    def __getitem__(self, i: int) -> tuple[str, ...]: ...
    @overload
    def __getitem__(self, i: slice) -> list[tuple[str, ...]]: ...

    def __getitem__(self, i: int | slice) -> tuple[str, ...] | list[tuple[str, ...]]:
        if isinstance(i, slice):
            return [tuple(self._raw[k]) for k in self._positions[i]]
        return tuple(self._raw[self._positions[i]])


def read_prediction_records(data: bytes, file_name: str) -> FileRecords:
    """The rows of a good_data file as API records: customer_id kept, the label dropped, blanks None.

    Read by the one reader of customer files (core/reader.py), so a file dropped here by hand in
    any shape ingestion accepts (the IBM export, `;` and decimal commas...) is read the same way.
    Values are typed by the one typed reading of cells (core/cells.py) because the API's numbers
    are strict (12, not "12" nor 12.0 for an integer feature). A row that cannot become a record
    (a field count unlike the header's, text in a number column) is set aside in `refused`,
    never sent. All rows in memory: the job itself streams (`open_prediction_file`).

    Raises:
        UnreadableFileError: the file as a whole is not customer rows (the reader's reasons, or
            a required column missing).
    """
    stream = open_prediction_file(data, file_name, chunk_rows=1 << 30)
    result = FileRecords()
    raw: list[tuple[str, ...]] = []
    for chunk in stream.chunks():
        read = records_of_chunk(chunk)
        result.records += read.records
        result.rows += read.rows
        raw.extend(read.raw)
        result.refused += read.refused
    result.raw = raw
    return result


def open_prediction_file(source: bytes | Path, file_name: str, *, chunk_rows: int) -> CustomerFileStream:
    """A good_data file opened by the one reader, to be read `chunk_rows` rows at a time.

    Raises:
        UnreadableFileError: as `read_prediction_records` (a quote never closed: from `chunks()`).
    """
    try:
        stream = open_customer_file(source, _record_schema(), chunk_rows=chunk_rows)
    except UnreadableFileError as error:
        raise UnreadableFileError(error.error_type, f"{file_name}: the file {error.detail}") from error
    missing = [f.name for f in FEATURES if f.required and f.name not in stream.columns]
    if missing:
        raise UnreadableFileError(ErrorType.UNREADABLE_FILE, f"{file_name}: missing columns {missing}")
    return stream


def records_of_chunk(chunk: RowChunk) -> FileRecords:
    """One chunk's rows as API records (typed by core/cells.py), and the rows set aside."""
    properties = _record_schema()["properties"]
    columns = [name for name in (IDENTIFIER, *(f.name for f in FEATURES)) if name in chunk.cells]
    typed = {name: type_column(chunk.cells[name], properties[name]) for name in columns}
    values = {name: column.values for name, column in typed.items()}
    problems: dict[int, list[str]] = {}
    for k, found in chunk.problems.items():
        problems[k] = [f"{column or 'row'}: {message}" for column, message in found]
    malformed = set(chunk.malformed)
    for name, column in typed.items():
        for k, message in column.problems.items():
            if k not in malformed:
                problems.setdefault(k, []).append(f"{name}: {message}")
    refused = [
        RefusedRow(chunk.numbers[k], tuple(problems[k]), tuple(chunk.raw[k])) for k in sorted(problems)
    ]
    kept = [k for k in range(len(chunk)) if k not in problems]
    # one dict per record from the typed columns (zip: no per-cell lookup)
    value_rows: Iterable[tuple[Any, ...]] = zip(*(values[name] for name in columns), strict=True)
    if problems:
        value_rows = itertools.compress(value_rows, [k not in problems for k in range(len(chunk))])
    records = [dict(zip(columns, row, strict=True)) for row in value_rows]
    if IDENTIFIER in columns:
        for record in records:
            if record[IDENTIFIER] is None:
                del record[IDENTIFIER]
    numbers = chunk.numbers
    return FileRecords(
        records=records, rows=[numbers[k] for k in kept], raw=_RawOfRecords(chunk.raw, kept),
        refused=refused,
    )


@lru_cache(maxsize=1)
def _record_schema() -> dict[str, Any]:
    return record_json_schema()


def predict_file(
    path: Path, client: ChurnApiClient, chunk_size: int, expected_checksum: str | None = None,
    *, bad_data_dir: Path,
) -> int:
    """Send every row of one file to the API in chunks, then record the file; returns the rows predicted.

    The file is read as a stream, `chunk_size` rows per request (SCHEDULED_PREDICT_CHUNK_SIZE), and the
    API asked for its short answer (`echo=false`: no echoed features nor reasons; the stored
    rows keep them). Each request carries the key `<file>:<checksum>:<chunk>`; the checksum is
    taken before the rows are read, and the file must be the same one (inode, size, modification
    time) once they are: a file replaced meanwhile fails the task (retried, it scores the new
    content under its own checksum), so the ledger never names a version other than the one
    scored. A file that changed since `check_for_new_data` is scored under its new checksum.

    Rows that cannot be predicted never block the file: rows the reader cannot turn into records,
    and rows the API refuses (422 naming the row: a cross-field rule), are set aside in
    `bad_data_dir/<name>.refused.csv` with their reasons (written before the ledger entry, under
    a name fixed by the file's checksum, so a rerun rewrites the same file); the other rows of
    the chunk are sent again without them (`ChurnApiClient.predict_setting_aside_refused`).

    A file that cannot be read as a whole (or lacks a required column) is set aside the same
    way, as one line with row 0 and the reason: it is entered in the ledger with 0 rows and
    never blocks a later run. Files in good_data are only read, never moved or changed.

    Raises:
        ApiRejectedError: the API refused a chunk for a reason that names no row (a wrong
            token, too many records): nothing of that file is recorded.
        ApiUnavailableError: the API is down or failing (the task retries; stored chunks replay).
        FileChangedError: the file was replaced while it was read.
    """
    before = _identity(path)
    file = GoodDataFile(path, file_sha256(path))
    if expected_checksum and expected_checksum != file.checksum:
        log.warning("%s changed since it was listed; scoring its current content", file.name)
    refused: list[RefusedRow] = []
    predicted = 0
    # one request in flight while the next chunk is read and typed (the API and the job each
    # have a core): the chunks are still sent one at a time, in order, each under its own key
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict-send") as sender:
        in_flight: tuple[Future[tuple[int, dict[int, list[str]]]], FileRecords] | None = None

        def collect() -> None:
            nonlocal predicted, in_flight
            if in_flight is None:
                return
            future, read = in_flight
            in_flight = None
            sent, set_aside = future.result()
            predicted += sent
            refused.extend(
                RefusedRow(read.rows[position], tuple(reasons), read.raw[position])
                for position, reasons in set_aside.items()
            )

        try:
            with paused_cyclic_gc():
                stream = open_prediction_file(path, file.name, chunk_rows=chunk_size)
                for index, chunk in enumerate(stream.chunks()):
                    read = records_of_chunk(chunk)
                    refused.extend(read.refused)
                    collect()
                    in_flight = sender.submit(
                        send_chunk, client, read.records, file_name=file.name,
                        batch_key=f"{file.name}:{file.checksum}:{index}",
                    ), read
                collect()
        except UnreadableFileError as error:  # no row to send: the whole file is set aside, row 0
            collect()  # the chunk sent before the file turned out unreadable counts, as before
            refused = [RefusedRow(0, (str(error),), ())]
    if _identity(path) != before:
        raise FileChangedError(f"{file.name} was replaced while it was scored; the next try scores it again")
    if refused:
        target = bad_data_dir / refused_rows_name(file)
        write_refused_rows(target, refused)
        log.warning("%s: %d rows not predicted, set aside with their reasons in %s",
                    file.name, len(refused), target)
    # only now, with every row stored by the API or set aside, does the file count as predicted
    with session_scope() as session:
        record_predicted_file(session=session, file_name=file.name, checksum=file.checksum, rows=predicted)
    log.info("%s: %d rows predicted in chunks of %d", file.name, predicted, chunk_size)
    return predicted


class FileChangedError(RuntimeError):
    """A good_data file was replaced while the job read it; nothing of it is recorded."""


def _identity(path: Path) -> tuple[int, int, int]:
    status = path.stat()
    return status.st_ino, status.st_size, status.st_mtime_ns


def send_chunk(
    client: ChurnApiClient, records: Sequence[dict[str, Any]], *, file_name: str, batch_key: str,
) -> tuple[int, dict[int, list[str]]]:
    """Store one chunk; when the API refuses some of its rows, store the others without them.

    Returns the number of rows stored and, per refused position in the chunk, the API's reasons.
    """
    if not records:
        return 0, {}
    sent = client.predict_setting_aside_refused(
        records, source="scheduled", file_name=file_name, batch_key=batch_key, echo=False,
    )
    refused = {
        position: [f"{problem.field}: {problem.message}" for problem in problems]
        for position, problems in sent.refused.items()
    }
    return len(sent.kept), refused


def refused_rows_name(file: GoodDataFile) -> str:
    """`customers.3f9a1c2b7d4e.csv` -> `customers.3f9a1c2b7d4e.<checksum 12>.refused.csv`."""
    stem, dot, suffix = file.name.rpartition(".")
    base = stem if dot else file.name
    return f"{base}.{file.checksum[:12]}.refused.{suffix if dot else 'csv'}"


def write_refused_rows(target: Path, refused: Sequence[RefusedRow]) -> None:
    """The refused rows as CSV (`_row`, `_errors`, `_raw`: the fields as written), written atomically."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["_row", "_errors", "_raw"])
    for row in sorted(refused, key=lambda r: r.row):
        raw = io.StringIO()
        csv.writer(raw, lineterminator="").writerow(row.raw)
        writer.writerow([row.row, "; ".join(row.reasons), raw.getvalue()])
    write_atomic({target: out.getvalue().encode("utf-8")})


def check_for_new_data(settings: PredictionJobSettings | None = None) -> list[dict[str, str]]:
    """The files to predict, as XCom-friendly dicts (name, checksum); empty when there is none."""
    settings = settings or PredictionJobSettings()
    with session_scope() as session:
        files = find_unpredicted_files(settings.good_data_dir, session)
    return [{"file_name": f.name, "checksum": f.checksum} for f in files]


def make_predictions(files: Sequence[dict[str, str]], settings: PredictionJobSettings | None = None) -> int:
    """Predict every listed file; returns the rows predicted.

    Rows that cannot be predicted (unreadable, refused by the API) are set aside in bad_data by
    `predict_file` and never hold a file back. A file the API refuses as a whole (a 4xx that
    names no row, e.g. a wrong token) does not hold the others back: they are predicted, then
    FilesNotPredictedError names it. The API
    down or failing stops at once with ApiUnavailableError (the next files would fail the same way).
    """
    settings = settings or PredictionJobSettings()
    client = ChurnApiClient(settings.api_url, settings.token_value(), settings.api_timeout_seconds)
    rows, not_predicted = 0, []
    try:
        for listed in files:
            path = settings.good_data_dir / listed["file_name"]
            if not path.exists():  # removed by hand since it was listed: nothing left to predict
                log.warning("%s is gone from %s; not predicted", path.name, settings.good_data_dir)
                continue
            try:
                rows += predict_file(
                    path, client, settings.scheduled_predict_chunk_size, listed.get("checksum"),
                    bad_data_dir=settings.bad_data_dir,
                )
            except ApiRejectedError as error:
                not_predicted.append(f"{path.name}: {error}")
    finally:
        client.close()
    if not_predicted:
        raise FilesNotPredictedError("; ".join(not_predicted))
    return rows
