"""Check an uploaded CSV against the record JSON schema from GET /model, before anything is sent.

Pure functions. The file is read by the one reader of customer files (core/reader.py), the
same rules as the ingestion and prediction jobs. The result keeps the valid rows as typed JSON
records (what POST /predict takes), names missing and extra columns, and lists every invalid row
by its row number in the file, counted as a spreadsheet shows it (the header is usually row 1,
the first customer row 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.cells import check_value, json_types, read_cell, type_column
from core.files import UnreadableFileError
from core.reader import FileRow, open_customer_file

CHECK_CHUNK_ROWS = 10_000  # rows typed at once (an upload is read whole: the page shows every row)

# The dataset's label. The API does not publish it (it is not an input), but files exported from
# the training data carry it; it is dropped so such a file can be scored as is.
LABEL_COLUMN = "churn"
# the optional customer id the API stores with a prediction (the record schema's only text field
# that is not a feature)
IDENTIFIER = "customer_id"
HEADER_ROW = 1
ROW_NUMBER_NOTE = (
    "Row numbers count as in a spreadsheet: the file's first line is row 1 (usually the header), "
    "blank lines included."
)


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
    reading_notes: list[str] = field(default_factory=list)

    @property
    def invalid_rows(self) -> list[int]:
        return sorted({error.row for error in self.row_errors})

    @property
    def can_send(self) -> bool:
        """Only valid rows of a readable file with every required column are ever sent."""
        return self.file_error is None and not self.missing_columns and bool(self.records)

    def notes(self) -> list[str]:
        """Informational notes for the page (problems that block sending are not notes)."""
        notes = [f"{note[:1].upper()}{note[1:]}." for note in self.reading_notes]
        if self.dropped_label:
            notes.append(f"The `{LABEL_COLUMN}` column holds known outcomes: dropped before predicting.")
        if self.extra_columns:
            names = ", ".join(f"`{name}`" for name in self.extra_columns)
            notes.append(f"Columns the model does not use were ignored: {names}.")
        return notes


def check_csv(content: bytes, schema: Mapping[str, Any], *, file_name: str = "upload.csv") -> CsvCheck:
    """Read the file with the one reader of customer files, check its header and every row.

    The reader (core/reader.py) applies the same rules as the ingestion job and the prediction
    job (encoding, delimiter, header names and aliases, text cells, field counts); its notes
    ("uses `;` as the delimiter") are shown to the user. The valid rows are kept as JSON records.
    """
    result = CsvCheck(file_name=file_name)
    properties: Mapping[str, Any] = schema.get("properties", {})
    try:
        stream = open_customer_file(content, schema, chunk_rows=CHECK_CHUNK_ROWS)
        check_header(result, list(stream.columns), properties, schema.get("required", ()))
        first_row_of: dict[str, int] = {}
        for chunk in stream.chunks():
            result.total_rows += len(chunk)
            if result.missing_columns:
                continue
            # each column typed at once by the one typed reading of cells (core/cells.py)
            typed = {name: type_column(texts, properties[name]) for name, texts in chunk.cells.items()
                     if name in properties}
            for k, row in enumerate(chunk.rows()):
                cells = {name: (column.values[k], column.problems.get(k)) for name, column in typed.items()}
                check_row(result, row, properties, first_row_of, cells)
    except UnreadableFileError as exc:
        return CsvCheck(file_name=file_name, file_error=f"The file {exc.detail}.")
    result.reading_notes = list(stream.notes)
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
    result: CsvCheck, row: FileRow, properties: Mapping[str, Any], first_row_of: dict[str, int],
    typed: Mapping[str, tuple[Any, str | None]] | None = None,
) -> None:
    """Add the row to the valid records or its problems to the row errors.

    `first_row_of` maps each customer id seen so far to its row: the same id again is a
    duplicate (the first stays valid), the ingestion job's rule too. `typed` holds each cell's
    value and type problem as the column was read (core/cells.py); absent, cells are read one
    by one.
    """
    problems = [RowError(row.number, column or "", reason) for column, reason in row.problems]
    if row.malformed:  # its fields were not matched to columns: nothing else to say
        result.row_errors.extend(problems)
        return
    customer_id = row.cells.get(IDENTIFIER)
    if customer_id is not None:
        if customer_id in first_row_of:
            problems.append(RowError(
                row.number, IDENTIFIER, f"the same customer as row {first_row_of[customer_id]}",
            ))
        else:
            first_row_of[customer_id] = row.number
    refused = {problem.column for problem in problems}
    record: dict[str, Any] = {}
    for column, text in row.cells.items():
        if column not in properties or column in refused:
            continue
        if typed is not None and column in typed:
            value, type_problem = typed[column]
            reason = type_problem or check_value(value, properties[column])
            value = None if reason else value
        else:
            value, reason = parse_value(text or "", properties[column])
        if reason:
            problems.append(RowError(row.number, column, reason))
        else:
            record[column] = value
    if problems:
        result.row_errors.extend(problems)
        return
    result.records.append(_drop_empty_optional(record, properties))
    result.record_rows.append(row.number)


def _drop_empty_optional(record: dict[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """An empty optional text (customer id) is left out rather than sent as null."""
    return {
        name: value for name, value in record.items()
        if value is not None or json_types(properties[name])[0] != "string"
    }


def parse_value(text: str, prop: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The typed value of one cell and why it breaks the schema (None when it is valid):
    the one typed reading of cells, `core.cells.read_cell`."""
    return read_cell(text, prop)
