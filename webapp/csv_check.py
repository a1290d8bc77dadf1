"""Check an uploaded CSV against the record JSON schema from GET /model, before anything is sent.

Pure functions. The result keeps the valid rows as typed JSON records (what POST /predict
takes), names missing and extra columns, and lists every invalid row by its row number in the
file, counted as a spreadsheet shows it: the header is row 1, the first customer is row 2.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.error_types import ErrorType
from core.files import UnreadableFileError, decode_text
from webapp.forms import json_types

# The dataset's label. The API does not publish it (it is not an input), but files exported from
# the training data carry it; it is dropped so such a file can be scored as is.
LABEL_COLUMN = "churn"
HEADER_ROW = 1
ROW_NUMBER_NOTE = "Row numbers count as in a spreadsheet: the header is row 1, the first customer row 2."


@dataclass(frozen=True)
class RowError:
    """Why one row of the file cannot be sent: its file row number, the column and the reason."""

    row: int
    column: str
    reason: str


@dataclass
class CsvCheck:
    """What an uploaded file holds, measured against the record schema."""

    file_name: str
    records: list[dict[str, Any]] = field(default_factory=list)
    record_rows: list[int] = field(default_factory=list)
    row_errors: list[RowError] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    dropped_label: bool = False
    total_rows: int = 0
    file_error: str | None = None

    @property
    def invalid_rows(self) -> list[int]:
        return sorted({error.row for error in self.row_errors})

    @property
    def can_send(self) -> bool:
        """Only valid rows of a readable file with every required column are ever sent."""
        return self.file_error is None and not self.missing_columns and bool(self.records)

    def notes(self) -> list[str]:
        """Informational notes for the page (problems that block sending are not notes)."""
        notes = []
        if self.dropped_label:
            notes.append(f"The `{LABEL_COLUMN}` column holds known outcomes: dropped before predicting.")
        if self.extra_columns:
            names = ", ".join(f"`{name}`" for name in self.extra_columns)
            notes.append(f"Columns the model does not use were ignored: {names}.")
        return notes


def check_csv(content: bytes, schema: Mapping[str, Any], *, file_name: str = "upload.csv") -> CsvCheck:
    """Read the file, check its header and every row; keep the valid rows as JSON records."""
    result = CsvCheck(file_name=file_name)
    try:
        rows = list(csv.reader(io.StringIO(decode_text(content))))
    except UnreadableFileError as exc:
        state = "is empty" if exc.error_type == ErrorType.EMPTY_FILE else "cannot be read"
        result.file_error = f"The file {state}: {exc.detail}."
        return result
    except csv.Error as exc:
        result.file_error = str(exc)
        return result
    if not rows or not any(cell.strip() for cell in rows[0]):
        result.file_error = "The file is empty: it has no header row."
        return result
    header = [name.strip() for name in rows[0]]
    properties: Mapping[str, Any] = schema.get("properties", {})
    check_header(result, header, properties, schema.get("required", ()))
    if result.missing_columns:
        result.total_rows = sum(1 for row in rows[1:] if row)
        return result
    for index, row in enumerate(rows[1:]):
        if row:  # blank lines are not customers
            check_row(result, HEADER_ROW + 1 + index, header, row, properties)
    if result.total_rows == 0:
        result.file_error = "The file has a header but no customer rows."
    return result


def check_header(
    result: CsvCheck, header: list[str], properties: Mapping[str, Any], required: Sequence[str],
) -> None:
    result.dropped_label = LABEL_COLUMN in header and LABEL_COLUMN not in properties
    result.missing_columns = [name for name in required if name not in header]
    result.extra_columns = [
        name for name in dict.fromkeys(header) if name not in properties and name != LABEL_COLUMN
    ]


def check_row(
    result: CsvCheck, row_number: int, header: list[str], row: list[str], properties: Mapping[str, Any],
) -> None:
    """Add the row to the valid records or its problems to the row errors."""
    result.total_rows += 1
    if len(row) != len(header):
        result.row_errors.append(RowError(
            row_number, "", f"has {len(row)} values but the header has {len(header)} columns",
        ))
        return
    record: dict[str, Any] = {}
    problems: list[RowError] = []
    for column, text in zip(header, row, strict=True):
        if column not in properties:
            continue
        value, reason = parse_value(text, properties[column])
        if reason:
            problems.append(RowError(row_number, column, reason))
        else:
            record[column] = value
    if problems:
        result.row_errors.extend(problems)
        return
    result.records.append(_drop_empty_optional(record, properties))
    result.record_rows.append(row_number)


def _drop_empty_optional(record: dict[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """An empty optional text (customer id) is left out rather than sent as null."""
    return {
        name: value for name, value in record.items()
        if value is not None or json_types(properties[name])[0] != "string"
    }


def parse_value(text: str, prop: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The typed value of one cell and why it breaks the schema (None when it is valid)."""
    json_type, nullable = json_types(prop)
    if text.strip() == "":
        return None, None if nullable else "missing value"
    value, reason = _typed(text, json_type)
    if reason:
        return None, reason
    reason = _constraint_problem(value, prop)
    return (None, reason) if reason else (value, None)


def _typed(text: str, json_type: str) -> tuple[Any, str | None]:
    if json_type == "string":
        return text, None
    try:
        number = float(text)
    except ValueError:
        expected = "an integer" if json_type == "integer" else "a number"
        return None, f"expected {expected}, got {text!r}"
    if not math.isfinite(number):
        return None, f"expected a finite number, got {text!r}"
    if json_type == "integer":
        if not number.is_integer():
            return None, f"expected an integer, got {text!r}"
        return int(number), None
    return number, None


def _constraint_problem(value: Any, prop: Mapping[str, Any]) -> str | None:
    allowed = prop.get("enum")
    if allowed is not None and value not in allowed:
        return f"{value!r} is not one of {list(allowed)}"
    if "minimum" in prop and value < prop["minimum"]:
        return f"{value!r} is below the minimum {prop['minimum']:g}"
    if "maximum" in prop and value > prop["maximum"]:
        return f"{value!r} is above the maximum {prop['maximum']:g}"
    max_length = prop.get("maxLength")
    if max_length is not None and isinstance(value, str) and len(value) > max_length:
        return f"longer than {max_length} characters"
    return None
