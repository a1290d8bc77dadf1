"""Validation of one raw customer file: file-level checks, then a Great Expectations suite per row.

Order of the checks, and why:
1. File level (`read_customer_table`, through the one reader of customer files, core/reader.py):
   no bytes, not CSV text (a spreadsheet, an archive, HTML, binary, a NUL), an unknown encoding,
   a column named twice, a header that names no contract column, or a header with no rows. The
   whole file is bad, criticality high; the rows are never looked at. What the reader did that
   the user may not expect (a detected encoding, a `;` delimiter, the IBM export's aliases) is the
   outcome's `detail`, shown on the alert card.
   A row whose field count differs from the header's is MALFORMED_ROW, that row only.
2. Columns: a required column missing makes every row invalid (MISSING_COLUMN, the column); a
   column the contract does not know is reported (UNEXPECTED_COLUMN) but spoils no row: the good
   rows are written without it.
3. Types: numbers are read by the one typed reading of cells (core/cells.py, `pd.to_numeric`);
   text that is not a finite number, and fractions in an integer column, are WRONG_TYPE. Great
   Expectations' type checks give no row indices, hence here.
4. The Great Expectations suite generated from `model.contract` (not-null wherever a value check
   exists, because range, set and regex checks ignore nulls), run with result_format COMPLETE on
   the file's first GREAT_EXPECTATIONS_ROWS rows: their invalid rows come from each expectation's
   `unexpected_index_list`, never from a pass rate. The rows after them are checked against the
   same expectation objects column by column, an evaluation that must agree with GX on every row
   GX validated (else the run stops); their counts are merged into the one result for Data Docs.
5. A customer_id longer than the API stores (OUT_OF_RANGE), duplicates (the same customer_id
   again, in any chunk; the first one stays valid) and the contract's cross-field rule
   (`model.contract.inconsistent_rows`, `check_consistency` on columns) on rows whose single
   values are valid.

The file is read and checked INGESTION_CHUNK_ROWS rows at a time (`FileValidator`): the outcome
is the same at any chunk size.

One (row, column) pair carries one reason, the first found in that order: a fraction in an
integer column is WRONG_TYPE, not also UNKNOWN_CATEGORY.

Criticality rule (`criticality_of`), by the share of invalid rows:

| criticality | when |
| --- | --- |
| high | the file is unreadable or empty, a required column is missing, or >= 50% of rows are invalid |
| medium | 10% to 50% of rows invalid |
| low | under 10% of rows invalid, or no invalid row but an unexpected column |
| none | nothing wrong |
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.cells import type_column
from core.collector import paused_cyclic_gc
from core.error_types import ErrorType
from core.files import UnreadableFileError
from core.reader import CustomerFile, CustomerFileStream, RowChunk, open_customer_file
from core.settings import IngestionSettings
from model.contract import (
    CONSISTENCY_COLUMNS,
    FEATURES,
    FEATURES_BY_NAME,
    IDENTIFIER,
    IDENTIFIER_MAX_LENGTH,
    REQUIRED_COLUMNS,
    TARGET,
    Feature,
    inconsistent_rows,
    record_json_schema,
)

log = logging.getLogger(__name__)

SUITE_NAME = "customer_records"
HIGH_INVALID_SHARE = 0.5
MEDIUM_INVALID_SHARE = 0.1
# Columns a raw file may carry besides the features: the customer id, and the label when the
# dataset was split with --keep-label.
KNOWN_EXTRA_COLUMNS = (IDENTIFIER, TARGET)
# Expectations whose failed rows mean the value is absent, versus present but not allowed.
_GE_ERROR_TYPES = {
    "expect_column_values_to_not_be_null": ErrorType.MISSING_VALUE,
    "expect_column_values_to_be_in_set": ErrorType.UNKNOWN_CATEGORY,
    "expect_column_values_to_be_between": ErrorType.OUT_OF_RANGE,
}
NUMBER_COLUMNS = tuple(f.name for f in FEATURES if f.dtype != "str")  # 0/1 flags included
# Rows of a file validated by the Great Expectations suite itself (about 0.3 ms a row): the
# report's result and those rows' reasons come from GX; the rows after them are checked against
# the same expectations column by column (`_unexpected`), which must agree with GX on the rows
# GX validated (`_check_agreement`), and their counts are merged into the report's result.
GREAT_EXPECTATIONS_ROWS = 10_000
# Heavy per-row lists dropped from the result kept for Data Docs (the page shows the partial lists).
_HEAVY_RESULT_KEYS = ("unexpected_list", "unexpected_index_list", "unexpected_index_query")


class Criticality(StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


Reason = tuple[ErrorType, str | None]
"""Why a row (or the file) is bad: the error type and the column, None for the whole file."""


@dataclass
class ValidationOutcome:
    """Everything the three downstream tasks need, JSON-safe through `to_dict` / `from_dict`.

    `row_errors` maps the position of each invalid row (0 = first data row) to its reasons;
    rows absent from it are valid. `error_counts` counts rows per (error type, column); a
    file-level error (unreadable, empty) counts 1 with column None.
    """

    file_name: str
    rows: int
    readable: bool
    row_errors: dict[int, list[Reason]] = field(default_factory=dict)
    file_errors: list[Reason] = field(default_factory=list)
    error_counts: dict[Reason, int] = field(default_factory=dict)
    criticality: Criticality = Criticality.NONE
    detail: str = ""
    ge_result: dict[str, Any] | None = None

    @property
    def invalid_rows(self) -> int:
        return len(self.row_errors)

    @property
    def valid_rows(self) -> int:
        return self.rows - self.invalid_rows

    @property
    def outcome(self) -> str:
        """good / bad / mixed / unreadable, the values of ingested_files.outcome."""
        if not self.readable:
            return "unreadable"
        if self.invalid_rows == 0:
            return "good"
        return "bad" if self.valid_rows == 0 else "mixed"

    @property
    def has_problems(self) -> bool:
        return self.criticality != Criticality.NONE

    def valid_mask(self) -> list[bool]:
        return [position not in self.row_errors for position in range(self.rows)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "file_name": self.file_name,
            "rows": self.rows,
            "readable": self.readable,
            "row_errors": [
                [position, [[str(t), c] for t, c in reasons]]
                for position, reasons in sorted(self.row_errors.items())
            ],
            "file_errors": [[str(t), c] for t, c in self.file_errors],
            "error_counts": [[str(t), c, n] for (t, c), n in self.error_counts.items()],
            "criticality": str(self.criticality),
            "detail": self.detail,
            "ge_result": self.ge_result,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationOutcome:
        return cls(
            file_name=data["file_name"],
            rows=data["rows"],
            readable=data["readable"],
            row_errors={
                int(position): [(ErrorType(t), c) for t, c in reasons]
                for position, reasons in data["row_errors"]
            },
            file_errors=[(ErrorType(t), c) for t, c in data["file_errors"]],
            error_counts={(ErrorType(t), c): n for t, c, n in data["error_counts"]},
            criticality=Criticality(data["criticality"]),
            detail=data["detail"],
            ge_result=data["ge_result"],
        )


def read_customer_table(path: Path) -> CustomerFile:
    """The file read by the one reader of customer files (core/reader.py), or UnreadableFileError.

    On top of the reader's rules: a header that names no column of the contract (not a customer
    file, or a delimiter outside `,` `;` tab `|`) makes the whole file unreadable. Every row in
    memory: for small files; the jobs stream with `open_customer_table`.
    """
    stream = open_customer_table(path)
    rows = tuple(row for chunk in stream.chunks() for row in chunk.rows())
    return CustomerFile(
        encoding=stream.encoding, delimiter=stream.delimiter, header_row=stream.header_row,
        columns=stream.columns, source_columns=stream.source_columns, rows=rows,
        shape=stream.shape, notes=stream.notes,
    )


def open_customer_table(path: Path, *, chunk_rows: int | None = None) -> CustomerFileStream:
    """The file opened by the one reader to be read in chunks of `chunk_rows` rows
    (INGESTION_CHUNK_ROWS by default), with the check of `read_customer_table` on its header.

    Raises:
        UnreadableFileError: the reader's reasons, or a header naming no contract column.
    """
    chunk_rows = chunk_rows or IngestionSettings().ingestion_chunk_rows
    stream = open_customer_file(path, _record_schema(), chunk_rows=chunk_rows)
    if not set(stream.columns) & set(FEATURES_BY_NAME):
        names = ", ".join(f"`{name}`" for name in stream.source_columns[:5])
        raise UnreadableFileError(
            ErrorType.UNREADABLE_FILE,
            f"has a header ({names}{', ...' if len(stream.columns) > 5 else ''}) that names no column "
            "of the customer contract: not a customer file",
        )
    return stream


def text_frame(table: CustomerFile | RowChunk) -> pd.DataFrame:
    """The cells as a frame of text (None where empty or where the row is malformed).

    A chunk's frame is indexed by the rows' positions in the file (0 = the first data row).
    """
    if isinstance(table, RowChunk):
        return pd.DataFrame(
            table.cells, index=pd.RangeIndex(table.start, table.start + len(table)), dtype=object,
        )
    empty = (None,) * len(table.columns)
    # a row's cells are in column order (core/reader.py), a malformed row has none
    records = [tuple(row.cells.values()) if row.cells else empty for row in table.rows]
    return pd.DataFrame.from_records(records, columns=list(table.columns), nrows=len(records)).astype(object)


@lru_cache(maxsize=1)
def _record_schema() -> dict[str, Any]:
    return record_json_schema()


def validate_customer_file(
    path: Path, *, file_name: str | None = None, chunk_rows: int | None = None,
) -> ValidationOutcome:
    """Validate one raw file: file-level checks, then every row (see the module docstring).

    `file_name` is the name the file arrived with, when `path` is its claimed copy. The file is
    read and validated `chunk_rows` rows at a time (INGESTION_CHUNK_ROWS by default): memory
    stays bounded by the chunk, whatever the file's size; the outcome is the same at any chunk
    size (one reason per cell, duplicates across chunks, one merged Great Expectations result).
    """
    file_name = file_name or path.name
    try:
        with paused_cyclic_gc():
            stream = open_customer_table(path, chunk_rows=chunk_rows)
            validator = FileValidator(file_name, stream.columns)
            for chunk in stream.chunks():
                validator.add_chunk(text_frame(chunk), chunk.problems)
    except UnreadableFileError as exc:
        log.warning("%s is not ingestible: the file %s", file_name, exc.detail)
        reason: Reason = (exc.error_type, None)
        return ValidationOutcome(
            file_name=file_name, rows=0, readable=False, file_errors=[reason],
            error_counts={reason: 1}, criticality=Criticality.HIGH, detail=f"the file {exc.detail}",
        )
    outcome = validator.outcome()
    outcome.detail = "; ".join(stream.notes)  # what the reader did that the user may not expect
    return outcome


def validate_customer_frame(
    frame: pd.DataFrame, *, file_name: str,
    row_problems: list[tuple[tuple[str | None, str], ...]] | None = None,
) -> ValidationOutcome:
    """Row-level validation of a frame of text cells as read from a raw file (one chunk).

    `row_problems` are the reader's, one tuple per row: a row whose fields did not match the
    header (column None) is MALFORMED_ROW and nothing else (its cells were never assigned); a
    cell the reader refused (a comma inside a number) is WRONG_TYPE.
    """
    frame = frame.reset_index(drop=True)
    validator = FileValidator(file_name, tuple(frame.columns))
    problems = {k: list(found) for k, found in enumerate(row_problems or []) if found}
    validator.add_chunk(frame, problems)
    return validator.outcome()


class FileValidator:
    """The row-level checks of one file, fed chunk by chunk (`add_chunk`), then `outcome()`.

    What spans chunks is kept here: the reasons of invalid rows, the customers seen (as 64-bit
    hashes in one sorted array, 8 bytes a row, for the duplicate check) and the Great
    Expectations result of each chunk, merged into one for Data Docs.
    """

    def __init__(self, file_name: str, columns: tuple[str, ...]) -> None:
        self.file_name = file_name
        self.columns = columns
        self.rows = 0
        self.found = _RowReasons(0)
        self.missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        self.unexpected = [c for c in columns if c not in FEATURES_BY_NAME and c not in KNOWN_EXTRA_COLUMNS]
        self._seen = np.empty(0, dtype=np.uint64)
        self._results: list[dict[str, Any]] = []
        self._malformed: list[int] = []
        self._suite_order: list[Any] | None = None
        self._taken = False

    def add_chunk(self, frame: pd.DataFrame, problems: Mapping[int, list[tuple[str | None, str]]]) -> None:
        """Validate the next rows: `frame` indexed by file position, `problems` the reader's by
        position in the chunk."""
        start = self.rows
        frame.index = pd.RangeIndex(start, start + len(frame))
        self.rows += len(frame)
        self.found.rows = self.rows
        self.found.new_chunk()
        self._malformed.extend(self._collect_reading_problems(problems, start))
        for column in self.missing:
            self.found.add(frame.index, ErrorType.MISSING_COLUMN, column)
        typed = _coerce_numbers(frame, self.found)
        rest = typed
        if self._suite_order is None:  # the file's first rows: the real Great Expectations suite
            sample = typed.iloc[:GREAT_EXPECTATIONS_ROWS]
            result = _run_suite(sample)
            self._suite_order = [e.expectation_config for e in result.results]
            for expectation in result.results:
                _collect_expectation_failures(expectation, self.found, self.missing)
                _check_agreement(expectation, sample)
            self._results.append(_docs_result(result))
            rest = typed.iloc[len(sample):]
        if len(rest):  # the same expectations, evaluated column by column
            base = self._results[0]["results"]
            parts = []
            for position, config in enumerate(self._suite_order):
                failing = _unexpected(config, rest)
                error_type = _GE_ERROR_TYPES.get(config.type)
                column = config.kwargs.get("column")
                if failing is not None and error_type is not None and column not in self.missing:
                    self.found.add(rest.index[failing], error_type, column)
                parts.append(_result_of(base[position], rest, config, failing))
            self._results.append({**self._results[0], "results": parts})
        _collect_long_identifiers(frame, self.found)
        self._collect_duplicates(frame)
        _collect_inconsistencies(typed, self.found)

    def outcome(self) -> ValidationOutcome:
        """The file's outcome once every chunk was added (once: the reasons move into it)."""
        if self._taken:
            raise RuntimeError("FileValidator.outcome() was already taken: its reasons moved into it")
        self._taken = True
        self.found.replace(self._malformed, [(ErrorType.MALFORMED_ROW, None)])
        file_errors: list[Reason] = [(ErrorType.UNEXPECTED_COLUMN, c) for c in self.unexpected]
        counts = self.found.counts()
        counts.update({reason: self.rows for reason in file_errors})
        outcome = ValidationOutcome(
            file_name=self.file_name, rows=self.rows, readable=True, row_errors=self.found.row_errors(),
            file_errors=file_errors, error_counts=counts, ge_result=merge_docs_results(self._results),
        )
        outcome.criticality = criticality_of(outcome, missing_columns=bool(self.missing))
        return outcome

    def _collect_reading_problems(
        self, problems: Mapping[int, list[tuple[str | None, str]]], start: int,
    ) -> list[int]:
        """The reader's problems as reasons; returns the positions of the malformed rows."""
        malformed = []
        for k, found in sorted(problems.items()):
            for column, _message in found:
                if column is None:
                    malformed.append(start + k)
                else:
                    self.found.add([start + k], ErrorType.WRONG_TYPE, column)
        return malformed

    def _collect_duplicates(self, frame: pd.DataFrame) -> None:
        """The same customer again (the whole row again when there is no id); the first stays valid.

        Customers are compared by a 64-bit hash of their id (of their row's cells without an id
        column), kept sorted across chunks: two different customers share one with a probability
        under 1e-5 for 10 million rows.
        """
        if IDENTIFIER in frame.columns:
            ids = frame[IDENTIFIER]
            keys = ids[ids.notna()]
            hashes = pd.util.hash_array(keys.to_numpy(dtype=object))
            column: str | None = IDENTIFIER
        else:
            keys = frame
            hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
            column = None
        if not len(hashes):
            return
        repeated_in_chunk = pd.Series(hashes).duplicated(keep="first").to_numpy()
        seen_before = _sorted_contains(self._seen, hashes)
        repeated = repeated_in_chunk | seen_before
        self.found.add(keys.index[repeated], ErrorType.DUPLICATE_ROW, column)
        new = np.unique(hashes[~seen_before])
        self._seen = np.insert(self._seen, np.searchsorted(self._seen, new), new)


def _sorted_contains(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of `values` are in the sorted array `sorted_values`."""
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(sorted_values, values)
    inside = at < len(sorted_values)
    found = np.zeros(len(values), dtype=bool)
    found[inside] = sorted_values[at[inside]] == values[inside]
    return found


def criticality_of(outcome: ValidationOutcome, *, missing_columns: bool = False) -> Criticality:
    """The documented rule (module docstring): unreadable, a missing column or half bad is high."""
    if not outcome.readable or missing_columns:
        return Criticality.HIGH
    share = outcome.invalid_rows / outcome.rows if outcome.rows else 1.0
    if share >= HIGH_INVALID_SHARE:
        return Criticality.HIGH
    if share >= MEDIUM_INVALID_SHARE:
        return Criticality.MEDIUM
    if share > 0 or outcome.file_errors:
        return Criticality.LOW
    return Criticality.NONE


class _RowReasons:
    """Reasons per row, one per column: the first reason found for a cell wins.

    Kept compact, since a large file may have millions of invalid rows: each row's reasons are a
    tuple of (column, error type) pairs, the pairs themselves shared by every row that has them.
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self._by_row: dict[int, tuple[tuple[str | None, ErrorType], ...]] = {}
        self._pairs: dict[tuple[str | None, ErrorType], tuple[str | None, ErrorType]] = {}
        self.touched: set[int] = set()  # rows given a reason since the chunk began (`new_chunk`)

    def new_chunk(self) -> None:
        self.touched = set()

    def _pair(self, column: str | None, error_type: ErrorType) -> tuple[str | None, ErrorType]:
        return self._pairs.setdefault((column, error_type), (column, error_type))

    def add(self, positions: Iterable[int], error_type: ErrorType, column: str | None) -> None:
        pair = self._pair(column, error_type)
        by_row = self._by_row
        for position in positions:
            position = int(position)
            found = by_row.get(position)
            if found is None:
                by_row[position] = (pair,)
            elif all(known != column for known, _ in found):
                by_row[position] = (*found, pair)
            self.touched.add(position)

    def add_all(self, error_type: ErrorType, column: str | None) -> None:
        self.add(range(self.rows), error_type, column)

    def replace(self, positions: Iterable[int], reasons: list[Reason]) -> None:
        """Set the reasons of these rows to exactly `reasons`, dropping what other checks found."""
        by_column = {column: error_type for error_type, column in reasons}
        pairs = tuple(self._pair(column, error_type) for column, error_type in by_column.items())
        for position in positions:
            self._by_row[int(position)] = pairs

    def has(self, position: int, column: str) -> bool:
        return any(known == column for known, _ in self._by_row.get(position, ()))

    def row_errors(self) -> dict[int, list[Reason]]:
        """Every row's reasons as (error type, column), by position; empties this object (a large
        file's reasons are not held twice)."""
        reasons_of: dict[tuple[str | None, ErrorType], Reason] = {
            pair: (pair[1], pair[0]) for pair in self._pairs.values()
        }
        errors: dict[int, list[Reason]] = {}
        by_row = self._by_row
        for position in sorted(by_row):
            errors[position] = [reasons_of[pair] for pair in by_row.pop(position)]
        return errors

    def counts(self) -> dict[Reason, int]:
        counts: dict[Reason, int] = {}
        for reasons in self._by_row.values():
            for column, error_type in reasons:
                counts[(error_type, column)] = counts.get((error_type, column), 0) + 1
        return counts


def _coerce_numbers(frame: pd.DataFrame, found: _RowReasons) -> pd.DataFrame:
    """Numeric columns as float64, read by the one typed reading (core/cells.py): text that is
    not a finite number, or a fraction for an integer, is WRONG_TYPE and becomes NaN."""
    typed = frame.copy()
    properties = _record_schema()["properties"]
    for name in NUMBER_COLUMNS:
        if name not in frame.columns:
            continue
        column = type_column(frame[name].tolist(), properties[name])
        found.add((frame.index[k] for k in column.problems), ErrorType.WRONG_TYPE, name)
        typed[name] = pd.Series(column.numbers, index=frame.index, dtype="float64")
    return typed


def _collect_expectation_failures(expectation: Any, found: _RowReasons, missing: list[str]) -> None:
    """Invalid rows of one expectation, from its unexpected_index_list (never from a pass rate)."""
    config = expectation.expectation_config
    column = config.kwargs.get("column")
    error_type = _GE_ERROR_TYPES.get(config.type)
    if error_type is None or column in missing or expectation.success:
        return
    indices = expectation.result.get("unexpected_index_list")
    if indices is None:
        raise RuntimeError(
            f"{config.type} on {column} failed without row indices: {expectation.exception_info}"
        )
    found.add(indices, error_type, column)


def _unexpected(config: Any, typed: pd.DataFrame) -> np.ndarray | None:
    """The rows one expectation of the suite fails, evaluated as Great Expectations does (a set
    or range check ignores nulls; between is inclusive); None for a table-level expectation or
    a column the frame lacks."""
    column = config.kwargs.get("column")
    if column is None or column not in typed.columns or config.type not in _GE_ERROR_TYPES:
        return None
    values = typed[column]
    present = values.notna().to_numpy()
    if config.type == "expect_column_values_to_not_be_null":
        return ~present
    if config.type == "expect_column_values_to_be_in_set":
        return present & ~values.isin(config.kwargs["value_set"]).to_numpy()
    numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    inside = np.ones(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        if config.kwargs.get("min_value") is not None:
            inside &= numbers >= config.kwargs["min_value"]
        if config.kwargs.get("max_value") is not None:
            inside &= numbers <= config.kwargs["max_value"]
    return present & ~inside


def _check_agreement(expectation: Any, sample: pd.DataFrame) -> None:
    """The column-by-column evaluation must fail the rows Great Expectations failed, on the rows
    GX validated: a difference (a new GX version, a new kind of expectation) stops the run."""
    failing = _unexpected(expectation.expectation_config, sample)
    if failing is None:
        return
    ours = set(sample.index[failing].tolist())
    theirs = set() if expectation.success else set(expectation.result.get("unexpected_index_list") or [])
    if ours != theirs:
        raise RuntimeError(
            f"{expectation.expectation_config.type} on "
            f"{expectation.expectation_config.kwargs.get('column')}: "
            f"Great Expectations failed rows {sorted(theirs)[:10]}, the column check {sorted(ours)[:10]}"
        )


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _result_of(
    base: dict[str, Any], typed: pd.DataFrame, config: Any, failing: np.ndarray | None,
) -> dict[str, Any]:
    """An expectation's result on rows validated column by column, in Great Expectations' shape
    (the keys of `base`, GX's result on the file's first rows), for `merge_docs_results`."""
    if failing is None:
        return copy.deepcopy(base)
    column = typed[config.kwargs["column"]]
    unexpected = column[failing]
    shown = [_json_value(v) for v in unexpected.iloc[:_MERGED_LIST_LENGTH].tolist()]
    counts = unexpected.value_counts(dropna=False).head(_MERGED_LIST_LENGTH)
    values = {
        "element_count": len(column), "unexpected_count": int(failing.sum()),
        "missing_count": int(column.isna().sum()), "partial_unexpected_list": shown,
        "partial_unexpected_index_list": unexpected.index[:_MERGED_LIST_LENGTH].tolist(),
        "partial_unexpected_counts": [
            {"value": _json_value(v), "count": int(c)} for v, c in counts.items()
        ],
    }
    result = {key: values.get(key, value) for key, value in base.get("result", {}).items()}
    return {**base, "success": not failing.any(), "result": result}


def _collect_long_identifiers(frame: pd.DataFrame, found: _RowReasons) -> None:
    """A customer id longer than the API stores: the row would make the API refuse its whole chunk."""
    if IDENTIFIER in frame.columns:
        too_long = frame[IDENTIFIER].str.len() > IDENTIFIER_MAX_LENGTH
        found.add(too_long[too_long].index, ErrorType.OUT_OF_RANGE, IDENTIFIER)


def _collect_inconsistencies(typed: pd.DataFrame, found: _RowReasons) -> None:
    """The contract's cross-field rule (`inconsistent_rows`), on rows whose values it reads are each valid."""
    if any(c not in typed.columns for c in CONSISTENCY_COLUMNS):
        return
    flagged = {p for p in found.touched if any(found.has(p, c) for c in CONSISTENCY_COLUMNS)}
    values = typed[list(CONSISTENCY_COLUMNS)]
    if flagged:
        values = values[~values.index.isin(list(flagged))]
    bad = inconsistent_rows(*(values[c].to_numpy(dtype="float64") for c in CONSISTENCY_COLUMNS))
    found.add(values.index[bad], ErrorType.INCONSISTENT_VALUES, "total_charges")


def _docs_result(result: Any, *, offset: int = 0) -> dict[str, Any]:
    """The Great Expectations result for Data Docs, without the per-row lists (kept small for XCom)."""
    data = result.to_json_dict()
    for expectation in data["results"]:
        for key in _HEAVY_RESULT_KEYS:
            expectation.get("result", {}).pop(key, None)
    return data


_MERGED_LIST_LENGTH = 20  # Great Expectations' own length of the partial lists


def merge_docs_results(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One Great Expectations result for the whole file from the results of its chunks.

    Per expectation: counts added, percentages recomputed from them (as GX defines them:
    unexpected_percent over the non-missing values), partial lists concatenated and cut to GX's
    20, success only if every chunk succeeded; the statistics recomputed. One chunk: as is.
    """
    if not results:
        return None
    if len(results) == 1:
        return results[0]
    merged = copy.deepcopy(results[0])
    for position, expectation in enumerate(merged["results"]):
        parts = [r["results"][position] for r in results]
        expectation["success"] = all(p["success"] for p in parts)
        combined = expectation.get("result", {})
        for key in list(combined):
            values = [p.get("result", {}).get(key) for p in parts]
            if key.endswith("_count") and all(isinstance(v, int) for v in values):
                combined[key] = sum(values)
            elif key == "partial_unexpected_counts" and all(isinstance(v, list) for v in values):
                tally: dict[Any, int] = {}
                for value_counts in values:
                    for item in value_counts:
                        marker = json.dumps(item.get("value"), sort_keys=True, default=str)
                        tally[marker] = tally.get(marker, 0) + int(item.get("count", 0))
                ranked = sorted(tally.items(), key=lambda pair: -pair[1])[:_MERGED_LIST_LENGTH]
                combined[key] = [{"value": json.loads(marker), "count": count} for marker, count in ranked]
            elif key.startswith("partial_") and all(isinstance(v, list) for v in values):
                joined = [item for v in values for item in v]
                combined[key] = joined[:_MERGED_LIST_LENGTH]
        elements, missing = combined.get("element_count"), combined.get("missing_count", 0)
        unexpected = combined.get("unexpected_count")
        if isinstance(elements, int) and isinstance(unexpected, int):
            present = elements - (missing or 0)
            combined["unexpected_percent"] = 100 * unexpected / present if present else None
            combined["unexpected_percent_nonmissing"] = combined["unexpected_percent"]
            combined["unexpected_percent_total"] = 100 * unexpected / elements if elements else None
            if "missing_percent" in combined:
                combined["missing_percent"] = 100 * (missing or 0) / elements if elements else None
    evaluated = len(merged["results"])
    successful = sum(1 for e in merged["results"] if e["success"])
    merged["success"] = successful == evaluated
    merged["statistics"] = {
        **merged.get("statistics", {}), "evaluated_expectations": evaluated,
        "successful_expectations": successful, "unsuccessful_expectations": evaluated - successful,
        "success_percent": 100 * successful / evaluated if evaluated else None,
    }
    return merged


def expectations_from_contract(features: Iterable[Feature] = FEATURES) -> list[Any]:
    """The suite, generated from the feature contract: the one list of rules."""
    import great_expectations.expectations as gxe

    features = tuple(features)
    # one table-level check lists missing (and extra) columns on the report; one per column would
    # cost a third of the validation time for nothing the row checks need
    expectations: list[Any] = [gxe.ExpectTableColumnsToMatchSet(
        column_set=[f.name for f in features if f.required], exact_match=False,
    )]
    for feature in features:
        if not feature.nullable:
            # range and set checks ignore nulls: without this a blank cell would pass
            expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=feature.name))
        if feature.allowed is not None:
            expectations.append(
                gxe.ExpectColumnValuesToBeInSet(column=feature.name, value_set=list(feature.allowed))
            )
        if feature.minimum is not None or feature.maximum is not None:
            expectations.append(gxe.ExpectColumnValuesToBeBetween(
                column=feature.name, min_value=feature.minimum, max_value=feature.maximum,
            ))
    return expectations


@lru_cache(maxsize=1)
def _validation_definition() -> Any:
    """An ephemeral context with the suite, built once per process (it costs more than a validation)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("ingestion")
        .add_dataframe_asset("raw_file")
        .add_batch_definition_whole_dataframe("whole_file")
    )
    suite = gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations_from_contract())
    suite = context.suites.add(suite)
    return context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{SUITE_NAME}_validation", data=batch, suite=suite)
    )


def _run_suite(typed: pd.DataFrame) -> Any:
    return _validation_definition().run(
        batch_parameters={"dataframe": typed}, result_format={"result_format": "COMPLETE"},
    )
