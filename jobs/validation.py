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
3. Types: numbers are coerced with `pd.to_numeric`; text that became NaN, and fractions in an
   integer column, are WRONG_TYPE. Great Expectations' type checks give no row indices, hence here.
4. The Great Expectations suite generated from `model.contract` (not-null wherever a value check
   exists, because range, set and regex checks ignore nulls), run with result_format COMPLETE:
   invalid rows come from each expectation's `unexpected_index_list`, never from a pass rate.
5. A customer_id longer than the API stores (OUT_OF_RANGE), duplicates (the same customer_id
   again; the first one stays valid) and the contract's cross-field rule
   (`model.contract.check_consistency`) on rows whose single values are valid.

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

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from core.error_types import ErrorType
from core.files import UnreadableFileError
from core.reader import CustomerFile, read_customer_file
from model.contract import (
    CONSISTENCY_COLUMNS,
    FEATURES,
    FEATURES_BY_NAME,
    IDENTIFIER,
    IDENTIFIER_MAX_LENGTH,
    REQUIRED_COLUMNS,
    TARGET,
    Feature,
    check_consistency,
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
    file, or a delimiter outside `,` `;` tab `|`) makes the whole file unreadable.
    """
    table = read_customer_file(path.read_bytes(), _record_schema())
    if not set(table.columns) & set(FEATURES_BY_NAME):
        names = ", ".join(f"`{name}`" for name in table.source_columns[:5])
        raise UnreadableFileError(
            ErrorType.UNREADABLE_FILE,
            f"has a header ({names}{', ...' if len(table.columns) > 5 else ''}) that names no column "
            "of the customer contract: not a customer file",
        )
    return table


def text_frame(table: CustomerFile) -> pd.DataFrame:
    """The table's cells as a frame of text (None where empty or where the row is malformed)."""
    empty = (None,) * len(table.columns)
    # a row's cells are in column order (core/reader.py), a malformed row has none
    records = [tuple(row.cells.values()) if row.cells else empty for row in table.rows]
    return pd.DataFrame.from_records(records, columns=list(table.columns), nrows=len(records)).astype(object)


@lru_cache(maxsize=1)
def _record_schema() -> dict[str, Any]:
    return record_json_schema()


def validate_customer_file(path: Path, *, file_name: str | None = None) -> ValidationOutcome:
    """Validate one raw file: file-level checks, then every row (see the module docstring).

    `file_name` is the name the file arrived with, when `path` is its claimed copy.
    """
    file_name = file_name or path.name
    try:
        table = read_customer_table(path)
    except UnreadableFileError as exc:
        log.warning("%s is not ingestible: the file %s", file_name, exc.detail)
        reason: Reason = (exc.error_type, None)
        return ValidationOutcome(
            file_name=file_name, rows=0, readable=False, file_errors=[reason],
            error_counts={reason: 1}, criticality=Criticality.HIGH, detail=f"the file {exc.detail}",
        )
    outcome = validate_customer_frame(
        text_frame(table), file_name=file_name, row_problems=[row.problems for row in table.rows],
    )
    outcome.detail = "; ".join(table.notes)  # what the reader did that the user may not expect
    return outcome


def validate_customer_frame(
    frame: pd.DataFrame, *, file_name: str,
    row_problems: list[tuple[tuple[str | None, str], ...]] | None = None,
) -> ValidationOutcome:
    """Row-level validation of a frame of text cells as read from a raw file.

    `row_problems` are the reader's, one tuple per row: a row whose fields did not match the
    header (column None) is MALFORMED_ROW and nothing else (its cells were never assigned); a
    cell the reader refused (a comma inside a number) is WRONG_TYPE.
    """
    frame = frame.reset_index(drop=True)
    found = _RowReasons(len(frame))
    malformed = _collect_reading_problems(row_problems or [], found)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    unexpected = [c for c in frame.columns if c not in FEATURES_BY_NAME and c not in KNOWN_EXTRA_COLUMNS]
    for column in missing:
        found.add_all(ErrorType.MISSING_COLUMN, column)
    typed = _coerce_numbers(frame, found)
    result = _run_suite(typed)
    for expectation in result.results:
        _collect_expectation_failures(expectation, found, missing)
    _collect_long_identifiers(frame, found)
    _collect_duplicates(frame, found)
    _collect_inconsistencies(typed, found)
    found.replace(malformed, [(ErrorType.MALFORMED_ROW, None)])
    file_errors: list[Reason] = [(ErrorType.UNEXPECTED_COLUMN, c) for c in unexpected]
    counts = found.counts()
    counts.update({reason: len(frame) for reason in file_errors})
    outcome = ValidationOutcome(
        file_name=file_name, rows=len(frame), readable=True, row_errors=found.row_errors(),
        file_errors=file_errors, error_counts=counts, ge_result=_docs_result(result),
    )
    outcome.criticality = criticality_of(outcome, missing_columns=bool(missing))
    return outcome


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
    """Reasons per row, one per column: the first reason found for a cell wins."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self._by_row: dict[int, dict[str | None, ErrorType]] = {}

    def add(self, positions: Iterable[int], error_type: ErrorType, column: str | None) -> None:
        for position in positions:
            self._by_row.setdefault(int(position), {}).setdefault(column, error_type)

    def add_all(self, error_type: ErrorType, column: str | None) -> None:
        self.add(range(self.rows), error_type, column)

    def replace(self, positions: Iterable[int], reasons: list[Reason]) -> None:
        """Set the reasons of these rows to exactly `reasons`, dropping what other checks found."""
        for position in positions:
            self._by_row[int(position)] = {column: error_type for error_type, column in reasons}

    def has(self, position: int, column: str) -> bool:
        return column in self._by_row.get(position, {})

    def row_errors(self) -> dict[int, list[Reason]]:
        return {
            position: [(error_type, column) for column, error_type in reasons.items()]
            for position, reasons in sorted(self._by_row.items())
        }

    def counts(self) -> dict[Reason, int]:
        counts: dict[Reason, int] = {}
        for reasons in self._by_row.values():
            for column, error_type in reasons.items():
                counts[(error_type, column)] = counts.get((error_type, column), 0) + 1
        return counts


def _collect_reading_problems(
    row_problems: list[tuple[tuple[str | None, str], ...]], found: _RowReasons,
) -> list[int]:
    """The reader's problems as reasons; returns the positions of the malformed rows."""
    malformed = []
    for position, problems in enumerate(row_problems):
        for column, _message in problems:
            if column is None:
                malformed.append(position)
            else:
                found.add([position], ErrorType.WRONG_TYPE, column)
    return malformed


def _coerce_numbers(frame: pd.DataFrame, found: _RowReasons) -> pd.DataFrame:
    """Numeric columns as float64; text that is not a finite number, or a fraction for an int, is WRONG_TYPE.

    Infinities become NaN (after being flagged) so that the Great Expectations result stays JSON.
    """
    typed = frame.copy()
    for name in NUMBER_COLUMNS:
        if name not in frame.columns:
            continue
        text = frame[name]
        numbers = pd.to_numeric(text.str.strip(), errors="coerce").astype("float64")
        infinite = numbers.abs().eq(float("inf"))
        numbers[infinite] = float("nan")
        wrong = text.notna() & numbers.isna()
        if FEATURES_BY_NAME[name].dtype == "int":
            wrong |= numbers.notna() & (numbers % 1 != 0)
        found.add(wrong[wrong].index, ErrorType.WRONG_TYPE, name)
        typed[name] = numbers
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


def _collect_long_identifiers(frame: pd.DataFrame, found: _RowReasons) -> None:
    """A customer id longer than the API stores: the row would make the API refuse its whole chunk."""
    if IDENTIFIER in frame.columns:
        too_long = frame[IDENTIFIER].str.len() > IDENTIFIER_MAX_LENGTH
        found.add(too_long[too_long].index, ErrorType.OUT_OF_RANGE, IDENTIFIER)


def _collect_duplicates(frame: pd.DataFrame, found: _RowReasons) -> None:
    """The same customer again (the whole row again when there is no id); the first stays valid."""
    if IDENTIFIER in frame.columns:
        repeated = frame[IDENTIFIER].notna() & frame.duplicated(subset=[IDENTIFIER], keep="first")
        found.add(repeated[repeated].index, ErrorType.DUPLICATE_ROW, IDENTIFIER)
    else:
        repeated = frame.duplicated(keep="first")
        found.add(repeated[repeated].index, ErrorType.DUPLICATE_ROW, None)


def _collect_inconsistencies(typed: pd.DataFrame, found: _RowReasons) -> None:
    """The contract's cross-field rule, on rows whose values it reads are each valid."""
    columns = [c for c in CONSISTENCY_COLUMNS if c in typed.columns]
    if len(columns) < len(CONSISTENCY_COLUMNS):
        return
    values = typed[columns]
    for position, row in zip(values.index, values.itertuples(index=False), strict=True):
        if any(found.has(position, c) for c in columns):
            continue
        record = {c: (None if pd.isna(v) else v) for c, v in zip(columns, row, strict=True)}
        for column, _why in check_consistency(record):
            found.add([position], ErrorType.INCONSISTENT_VALUES, column)


def _docs_result(result: Any) -> dict[str, Any]:
    """The Great Expectations result for Data Docs, without the per-row lists (kept small for XCom)."""
    data = result.to_json_dict()
    for expectation in data["results"]:
        for key in _HEAVY_RESULT_KEYS:
            expectation.get("result", {}).pop(key, None)
    return data


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
