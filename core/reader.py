"""The one reader of customer files: bytes in, a table of text cells out, by one set of rules.

The webapp's upload check, the ingestion validation and the prediction job all read customer
files here, so one file gives the same columns, the same rows and the same reading errors on
every path. The reader knows no feature by name: what it expects (the column names, their
aliases, which columns hold numbers, the codings of known exports) comes from the record JSON
schema that `model.contract.record_json_schema()` builds and the API publishes at `GET /model`.

Rules, in the order they apply (`read_customer_file`):

1. Content. No bytes, or only blank lines: EMPTY_FILE. A spreadsheet (an `.xlsx`/`.ods` zip, an
   `.xls` OLE file, an Excel XML workbook), a zip or gzip archive, a PDF, an HTML page or other
   binary content is named as such (UNREADABLE_FILE): it is not CSV text.
2. Encoding. UTF-8, with or without a BOM; UTF-16 or UTF-32 with a BOM; otherwise a legacy
   encoding detected by charset-normalizer (`Windows-1252`, ...), named in the notes; nothing
   recognised: a refusal that says to save the file as "CSV UTF-8". A NUL anywhere in the text
   makes the file unreadable (text never holds one; a file with one fails later on every path).
3. Lines. Any line ending (CRLF, LF, CR alone); blank lines before the header and between rows
   are skipped (a spreadsheet's blank row is not a customer).
4. Delimiter. Detected among `,` `;` tab `|` on the header line (an Excel `sep=;` first line is
   obeyed); a delimiter other than `,` is named in the notes ("uses `;` as the delimiter").
5. Header. Names are normalised (surrounding spaces removed, case folded, inner spaces -> `_`),
   then translated through the aliases of a known export (the public IBM Telco file:
   `customerID` -> `customer_id`, ...). Two columns with one name are refused, naming it. A
   column with no name and no value in any row (an export's trailing delimiter) is ignored.
6. Rows. Every cell is text: `NA`, `None`, `null` are kept as written (never "missing"); a
   cell of white space only is empty (None). A row with more or fewer fields than the header
   is that row's error ("row 9 has 22 fields, the header 21"), its raw fields kept and no cell
   assigned (nothing shifts into a wrong column); the other rows are unaffected. One exception:
   when every row ends with exactly one empty field more than the header (a trailing delimiter on
   every data line), that empty field is ignored.
7. Codings. In a file in a known export's shape, its value codings become the contract's
   (`Female` -> `1`, `Yes` -> `1` for a 0/1 flag); values outside the coding stay as written.
8. Decimal comma. In a number column, `29,85` is read as `29.85` when the file's delimiter is
   not `,` (European exports: `;` with decimal commas). In a comma-delimited file a comma inside
   a number (quoted `"1,889"`) is ambiguous (thousands or decimals) and is that cell's error.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.error_types import ErrorType
from core.files import UnreadableFileError, decode_text_and_encoding

DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "`,`", ";": "`;`", "\t": "tab", "|": "`|`"}
# rows looked at when two delimiters split the header into the same number of fields
_DELIMITER_SAMPLE_ROWS = 50
_DELIMITER_SAMPLE_CHARS = 65_536
_EXCEL_SEP_LINE = re.compile(r"^sep=(.)$", re.IGNORECASE)
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d+,\d+\s*$")
_HEADER_SPACES = re.compile(r"\s+")



@dataclass(frozen=True)
class FileRow:
    """One data row of a customer file.

    `number` is the row as a spreadsheet shows it (the file's first line is row 1, blank lines
    count). `cells` maps each column (normalised name) to its text, None when empty; it is empty
    when the row's field count differs from the header (`problems` then says so). `raw` holds the
    row's fields exactly as written. `problems` lists (column, what is wrong), column None for the
    whole row.
    """

    number: int
    cells: Mapping[str, str | None]
    raw: tuple[str, ...]
    problems: tuple[tuple[str | None, str], ...] = ()

    @property
    def malformed(self) -> bool:
        """The row's fields could not be matched to the header's columns."""
        return any(column is None for column, _ in self.problems)


@dataclass(frozen=True)
class CustomerFile:
    """A customer file read by the rules of this module.

    `columns` are the normalised (and alias-translated) names in file order, `source_columns`
    the same columns as the header spells them. `encoding` and `delimiter` are what the file
    uses; `shape` names the known export the file was recognised as (None: the contract's own
    names); `notes` say, in the user's terms and as clauses a page can capitalise ("the file uses
    `;` as the delimiter"), everything the reader did that the user might not expect (a detected
    encoding, a `;` delimiter, an ignored column, aliases, decimal commas).
    """

    encoding: str
    delimiter: str
    header_row: int
    columns: tuple[str, ...]
    source_columns: tuple[str, ...]
    rows: tuple[FileRow, ...]
    shape: str | None = None
    notes: tuple[str, ...] = field(default=())

    def column_values(self, column: str) -> list[str | None]:
        """The text of one column in every row (None for an empty cell or a malformed row)."""
        return [row.cells.get(column) for row in self.rows]


@dataclass(frozen=True)
class _Shape:
    name: str
    columns: dict[str, str]  # normalised export name -> contract name
    values: dict[str, dict[str, str]]  # contract name -> {export text: contract text}
    distinctive: frozenset[str]  # normalised names only this export uses


def normalise_column_name(name: str) -> str:
    """How every path compares header names: `' Monthly Charges '` -> `monthly_charges`.

    NFKC (full-width and non-breaking spaces become plain), surrounding white space removed,
    case folded, inner runs of white space replaced by one `_`.
    """
    text = unicodedata.normalize("NFKC", name).strip().casefold()
    return _HEADER_SPACES.sub("_", text)


def read_customer_file(data: bytes, schema: Mapping[str, Any]) -> CustomerFile:
    """Read a customer file's bytes by the module's rules.

    Args:
        data: the file's bytes, as uploaded or as found on disk.
        schema: the record JSON schema (`properties` with `type`; optional `x-file-shapes`, the
            known exports' aliases and codings), from `model.contract.record_json_schema()` or
            from the API's `GET /model`.
    Returns:
        the file's columns and rows as text, with the reading problems of single rows.
    Raises:
        UnreadableFileError: the whole file cannot be read as customer rows (EMPTY_FILE: no
            bytes, blank lines only, a header with no row; UNREADABLE_FILE: not CSV text, an
            unknown encoding, a NUL, no delimiter, a column named twice).
    """
    notes: list[str] = []
    text, encoding = decode_text_and_encoding(data)
    if encoding not in ("UTF-8", "UTF-8 with BOM"):
        notes.append(f"the file was read as {encoding} text")
    records, delimiter, header_index = _split_records(text)
    if delimiter != ",":
        notes.append(f"the file uses {DELIMITER_NAMES[delimiter]} as the delimiter")
    header = list(records[header_index])
    data_records = [(i + 1, fields) for i, fields in enumerate(records) if i > header_index]
    data_records = [(n, fields) for n, fields in data_records if not _is_blank(fields)]
    if not data_records:
        raise UnreadableFileError(ErrorType.EMPTY_FILE, "has a header but no rows")
    if _trailing_field_on_every_row(header, data_records):
        data_records = [(n, fields[:-1]) for n, fields in data_records]
        notes.append(
            f"every row ends with one {DELIMITER_NAMES[delimiter]} more than the header: "
            "that empty last field was ignored"
        )
    kept = _kept_positions(header, data_records, notes)
    names = [normalise_column_name(header[i]) or f"(unnamed column {i + 1})" for i in kept]
    shape = _recognised_shape(names, schema)
    if shape is not None:
        names = [shape.columns.get(name, name) for name in names]
        notes.append(f"the file was read as {shape.name}: its column names and codings are known aliases")
    _refuse_duplicates(names, [header[i].strip() for i in kept], [i + 1 for i in kept])
    numbers = _number_columns(schema)
    reader = _RowReader(
        names=names, positions=kept, width=len(header), delimiter=delimiter,
        numbers=numbers, values=shape.values if shape else {},
    )
    rows = tuple(reader.read(n, fields) for n, fields in data_records)
    if reader.decimal_commas:
        notes.append(f"decimal commas were read as decimal points ({reader.decimal_commas} cells)")
    return CustomerFile(
        encoding=encoding, delimiter=delimiter, header_row=header_index + 1,
        columns=tuple(names), source_columns=tuple(header[i].strip() for i in kept),
        rows=rows, shape=shape.name if shape else None, notes=tuple(notes),
    )


def _records(text: str, delimiter: str = ",") -> list[list[str]]:
    """Every record of the text (blank lines included, as []) split with one delimiter."""
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:  # a field over the size limit: an opening quote never closed
        raise UnreadableFileError(
            ErrorType.UNREADABLE_FILE,
            f"cannot be split into rows ({exc}): a quote (\") is opened and never closed",
        ) from exc


def _is_blank(fields: Sequence[str]) -> bool:
    return not "".join(fields).strip()


def _split_records(text: str) -> tuple[list[list[str]], str, int]:
    """Every record split with the file's delimiter, the delimiter, and the header's index.

    The delimiter is the candidate that splits the header (the first non-blank record) into
    the most fields; a tie goes to the one whose next rows have the header's width most often.
    """
    sample = text[:_DELIMITER_SAMPLE_CHARS]
    first_line = next((line for line in sample.splitlines() if line.strip()), "")
    declared = _EXCEL_SEP_LINE.match(first_line.strip())
    if declared and declared.group(1) in DELIMITERS:
        delimiter = declared.group(1)
        records = _records(text, delimiter)
        non_blank = [i for i, fields in enumerate(records) if not _is_blank(fields)]
        if len(non_blank) < 2:
            raise UnreadableFileError(ErrorType.EMPTY_FILE, "holds no header after its `sep=` line")
        return records, delimiter, non_blank[1]
    scores: dict[str, tuple[int, int]] = {}
    for candidate in DELIMITERS:
        records = _records(sample, candidate)
        header_index = _first_non_blank(records)
        if header_index is None:
            raise UnreadableFileError(ErrorType.EMPTY_FILE, "holds only blank lines")
        scores[candidate] = (len(records[header_index]), _rows_matching_header(records, header_index))
    delimiter = max(DELIMITERS, key=lambda d: scores[d])  # max() keeps the first of equals: `,`
    if scores[delimiter][0] < 2:
        raise UnreadableFileError(
            ErrorType.UNREADABLE_FILE,
            "has a single column: no `,` `;` tab or `|` separates the header's names",
        )
    records = _records(text, delimiter)
    header_index = _first_non_blank(records)
    assert header_index is not None  # the sample had one
    return records, delimiter, header_index


def _first_non_blank(records: list[list[str]]) -> int | None:
    return next((i for i, fields in enumerate(records) if not _is_blank(fields)), None)


def _rows_matching_header(records: list[list[str]], header_index: int) -> int:
    width = len(records[header_index])
    sample = records[header_index + 1: header_index + 1 + _DELIMITER_SAMPLE_ROWS]
    return sum(1 for fields in sample if len(fields) == width)


def _trailing_field_on_every_row(header: list[str], rows: list[tuple[int, list[str]]]) -> bool:
    return all(len(fields) == len(header) + 1 and not fields[-1].strip() for _, fields in rows)


def _kept_positions(header: list[str], rows: list[tuple[int, list[str]]], notes: list[str]) -> list[int]:
    """Header positions read as columns: all but a nameless column empty in every row."""
    kept = []
    for position, name in enumerate(header):
        if not name.strip() and all(
            len(fields) <= position or not fields[position].strip() for _, fields in rows
        ):
            notes.append(f"column {position + 1} has no name and no value: ignored")
            continue
        kept.append(position)
    return kept


def _refuse_duplicates(names: list[str], spelled: list[str], positions: list[int]) -> None:
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            first = seen[name]
            spellings = (
                f" (as `{spelled[first]}` and `{spelled[index]}`)"
                if spelled[first] != spelled[index] else ""
            )
            raise UnreadableFileError(
                ErrorType.UNREADABLE_FILE,
                f"names the column `{name}` twice, columns {positions[first]} and "
                f"{positions[index]}{spellings}: remove or rename one",
            )
        seen[name] = index


def file_shapes(schema: Mapping[str, Any]) -> list[_Shape]:
    """The known exports declared in the schema's `x-file-shapes`, names normalised."""
    properties = set(schema.get("properties", {})) | set(schema.get("x-extra-columns", []))
    shapes = []
    for declared in schema.get("x-file-shapes", []):
        columns = {normalise_column_name(k): v for k, v in declared["columns"].items()}
        shapes.append(_Shape(
            name=declared["name"], columns=columns,
            values={k: dict(v) for k, v in declared.get("values", {}).items()},
            distinctive=frozenset(k for k in columns if k not in properties),
        ))
    return shapes


def _recognised_shape(names: Iterable[str], schema: Mapping[str, Any]) -> _Shape | None:
    present = set(names)
    for shape in file_shapes(schema):
        if present & shape.distinctive:
            return shape
    return None


def _number_columns(schema: Mapping[str, Any]) -> frozenset[str]:
    """Columns whose JSON type is `number` (fractions allowed): where a decimal comma can occur."""
    numbers = set()
    for name, prop in schema.get("properties", {}).items():
        declared = prop.get("type")
        types = [declared] if isinstance(declared, str) else list(declared or [])
        if "number" in types:
            numbers.add(name)
    return frozenset(numbers)


@dataclass
class _RowReader:
    """Turns one record's fields into a FileRow (rules 6 to 8)."""

    names: list[str]
    positions: list[int]
    width: int
    delimiter: str
    numbers: frozenset[str]
    values: Mapping[str, Mapping[str, str]]
    decimal_commas: int = 0

    def __post_init__(self) -> None:
        # per column, what applies to its cells: the hot loop below then tests nothing else
        self._plain = [(n, p) for n, p in zip(self.names, self.positions, strict=True)
                       if n not in self.values and n not in self.numbers]
        self._special = [(n, p, self.values.get(n), n in self.numbers)
                         for n, p in zip(self.names, self.positions, strict=True)
                         if n in self.values or n in self.numbers]

    def read(self, number: int, fields: list[str]) -> FileRow:
        raw = tuple(fields)
        if len(fields) != self.width:
            return FileRow(number, {}, raw, ((None, self._field_count_problem(number, fields)),))
        cells: dict[str, str | None] = {
            name: fields[position] if fields[position].strip() else None for name, position in self._plain
        }
        problems: list[tuple[str | None, str]] = []
        for name, position, coding, is_number in self._special:
            written = fields[position]
            text: str | None = None
            if written.strip():
                text = coding.get(written, written) if coding is not None else written
            if text is not None and is_number and "," in text and _DECIMAL_COMMA.match(text):
                if self.delimiter == ",":
                    problems.append((name, f"`{text.strip()}` has a comma inside a number: write it "
                                           "with a decimal point and no thousands separator"))
                    text = None
                else:
                    text = text.replace(",", ".")
                    self.decimal_commas += 1
            cells[name] = text
        if self._special:  # keep the file's column order
            cells = {name: cells[name] for name in self.names}
        return FileRow(number, cells, raw, tuple(problems))

    def _field_count_problem(self, number: int, fields: list[str]) -> str:
        problem = f"row {number} has {len(fields)} fields, the header {self.width}"
        if any("\n" in cell or "\r" in cell for cell in fields):
            problem += ": a quote (\") opened in this row is not closed where it should be"
        return problem
