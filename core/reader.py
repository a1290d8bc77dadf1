"""The one reader of customer files: bytes in, a table of text cells out, by one set of rules.

The webapp's upload check, the ingestion validation and the prediction job all read customer
files here, so one file gives the same columns, the same rows and the same reading errors on
every path. The reader knows no feature by name: what it expects (the column names, their
aliases, which columns hold numbers, the codings of known exports) comes from the record JSON
schema that `model.contract.record_json_schema()` builds and the API publishes at `GET /model`.

A file is read whole (`read_customer_file`: the webapp's upload, small files) or as a stream of
chunks (`open_customer_file`: the jobs; memory bounded by the chunk, whatever the file's size),
by the same rules and with the same rows, cells, problems and notes at any chunk size. Records
are split by pyarrow's CSV reader where it splits them exactly as the csv module does (UTF-8,
the header on the first line, no empty line, every quoted field on one line:
`CustomerFileStream._columnar_input`), by the csv module otherwise; cells are handled column by
column.

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
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from core.error_types import ErrorType
from core.files import TextSource, UnreadableFileError, open_text

DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "`,`", ";": "`;`", "\t": "tab", "|": "`|`"}
# rows looked at when two delimiters split the header into the same number of fields
_DELIMITER_SAMPLE_ROWS = 50
_DELIMITER_SAMPLE_CHARS = 65_536
_EXCEL_SEP_LINE = re.compile(r"^sep=(.)$", re.IGNORECASE)
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d+,\d+\s*$")
_HEADER_SPACES = re.compile(r"\s+")
DEFAULT_CHUNK_ROWS = 50_000
"""Rows per chunk when the caller names none (the jobs pass INGESTION_CHUNK_ROWS, core/settings.py)."""



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
    """Read a customer file's bytes by the module's rules, every row in memory.

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
    stream = open_customer_file(data, schema)
    rows = tuple(row for chunk in stream.chunks() for row in chunk.rows())
    return CustomerFile(
        encoding=stream.encoding, delimiter=stream.delimiter, header_row=stream.header_row,
        columns=stream.columns, source_columns=stream.source_columns, rows=rows,
        shape=stream.shape, notes=stream.notes,
    )


def open_customer_file(
    source: bytes | Path, schema: Mapping[str, Any], *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> CustomerFileStream:
    """Open a customer file to read its rows chunk by chunk, in memory bounded by `chunk_rows`.

    The same rules as `read_customer_file` (which reads through this): the encoding, the
    delimiter, the header, the shape and the columns are settled here, before any row; the rows
    then come in chunks of `chunk_rows` (`CustomerFileStream.chunks()`, callable again for
    another pass). A rule that depends on every row (a trailing delimiter on every row, a
    nameless column empty in every row) costs one more pass over the file, only when the header
    or the first row makes it possible.

    Raises:
        UnreadableFileError: as `read_customer_file`; a quote never closed is found while
            reading the chunks and raised from `chunks()`.
    """
    text = open_text(source)
    notes: list[str] = []
    if text.encoding not in ("UTF-8", "UTF-8 with BOM"):
        notes.append(f"the file was read as {text.encoding} text")
    delimiter, header_index = _find_delimiter_and_header(text)
    if delimiter != ",":
        notes.append(f"the file uses {DELIMITER_NAMES[delimiter]} as the delimiter")
    records = _numbered_records(text, delimiter)
    header: list[str] = []
    first_row: list[str] | None = None
    for index, fields in records:
        if index == header_index:
            header = list(fields)
        elif index > header_index and not _is_blank(fields):
            first_row = fields
            break
    if first_row is None:
        raise UnreadableFileError(ErrorType.EMPTY_FILE, "has a header but no rows")
    trailing, empty_positions = False, frozenset[int]()
    nameless = [i for i, name in enumerate(header) if not name.strip()]
    maybe_trailing = len(first_row) == len(header) + 1 and not first_row[-1].strip()
    if nameless or maybe_trailing:  # rules on every row: one more pass
        trailing, empty_positions = _scan_every_row(text, delimiter, header_index, header, nameless)
    if trailing:
        notes.append(
            f"every row ends with one {DELIMITER_NAMES[delimiter]} more than the header: "
            "that empty last field was ignored"
        )
    kept = []
    for position in range(len(header)):
        if position in empty_positions:
            notes.append(f"column {position + 1} has no name and no value: ignored")
        else:
            kept.append(position)
    names = [normalise_column_name(header[i]) or f"(unnamed column {i + 1})" for i in kept]
    shape = _recognised_shape(names, schema)
    if shape is not None:
        names = [shape.columns.get(name, name) for name in names]
        notes.append(f"the file was read as {shape.name}: its column names and codings are known aliases")
    _refuse_duplicates(names, [header[i].strip() for i in kept], [i + 1 for i in kept])
    return CustomerFileStream(
        encoding=text.encoding, delimiter=delimiter, header_row=header_index + 1,
        columns=tuple(names), source_columns=tuple(header[i].strip() for i in kept),
        shape=shape.name if shape else None, chunk_rows=chunk_rows, _text=text,
        _header_index=header_index, _trailing=trailing, _width=len(header), _positions=tuple(kept),
        _numbers=_number_columns(schema), _values=shape.values if shape else {}, _notes=notes,
    )


@dataclass
class RowChunk:
    """Consecutive data rows of a customer file, column by column.

    `numbers[k]` is the k-th row's number as a spreadsheet shows it; `start` is the position of
    the chunk's first row among the file's data rows (0 = the first). `cells[column][k]` is the
    text of a cell (None when empty, or when the row is malformed); `raw[k]` the row's fields as
    written; `problems` maps k to the row's problems (column, what is wrong; column None: the
    row's fields do not match the header, and it has no cells).
    """

    start: int
    numbers: list[int]
    cells: dict[str, list[str | None]]
    raw: Sequence[Sequence[str]]
    problems: dict[int, list[tuple[str | None, str]]]

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def malformed(self) -> list[int]:
        """Positions in the chunk of the rows whose fields were not matched to columns."""
        return [k for k, found in self.problems.items() if any(column is None for column, _ in found)]

    def rows(self) -> Iterator[FileRow]:
        """The chunk as FileRow objects (one dict per row: for small files)."""
        names = list(self.cells)
        columns = list(self.cells.values())
        malformed = set(self.malformed)
        for k, number in enumerate(self.numbers):
            cells = {} if k in malformed else dict(zip(names, (c[k] for c in columns), strict=True))
            yield FileRow(number, cells, tuple(self.raw[k]), tuple(self.problems.get(k, ())))


@dataclass
class CustomerFileStream:
    """An opened customer file (`open_customer_file`): what the header says, then rows in chunks.

    Attributes are those of CustomerFile; `notes` is complete once `chunks()` has been read to
    its end (the count of decimal commas is known only then).
    """

    encoding: str
    delimiter: str
    header_row: int
    columns: tuple[str, ...]
    source_columns: tuple[str, ...]
    shape: str | None
    chunk_rows: int
    _text: TextSource
    _header_index: int
    _trailing: bool
    _width: int
    _positions: tuple[int, ...]
    _numbers: frozenset[str]
    _values: Mapping[str, Mapping[str, str]]
    _notes: list[str]
    _decimal_commas: int | None = None
    split_by: str = ""
    """Who split the records on the last `chunks()`: `pyarrow`, `csv` (the csv module), or
    `pyarrow, then csv` (a file that turned out otherwise midway)."""

    @property
    def notes(self) -> tuple[str, ...]:
        if self._decimal_commas:
            commas = f"decimal commas were read as decimal points ({self._decimal_commas} cells)"
            return (*self._notes, commas)
        return tuple(self._notes)

    def chunks(self) -> Iterator[RowChunk]:
        """The data rows, `chunk_rows` at a time, in file order (each call reads the file again).

        Records are split by pyarrow's CSV reader when the file is in the shape where it splits
        them exactly as the csv module does (`_columnar_input`), else by the csv module; a file
        that turns out otherwise midway (a field over the csv module's size limit) goes on with
        the csv module after the rows already given. Either way the same chunks.
        """
        reader = _ChunkReader(
            names=list(self.columns), positions=list(self._positions), width=self._width,
            delimiter=self.delimiter, numbers=self._numbers, values=self._values,
        )
        given = _Given(rows=0, last_index=self._header_index)
        columnar = self._columnar_input()
        self.split_by = "csv"
        if columnar is not None:
            try:
                self.split_by = "pyarrow"
                yield from self._columnar_chunks(columnar, reader, given)
                self._decimal_commas = reader.decimal_commas
                return
            except _NotExactError:  # the csv module reads on from the first row not given
                self.split_by = "pyarrow, then csv"
        yield from self._csv_chunks(reader, given)
        self._decimal_commas = reader.decimal_commas

    def _csv_chunks(self, reader: _ChunkReader, given: _Given) -> Iterator[RowChunk]:
        """The rows after `given` split by the csv module."""
        numbers: list[int] = []
        batch: list[list[str]] = []
        size, skip_through, trailing = self.chunk_rows, given.last_index, self._trailing
        for index, fields in _numbered_records(self._text, self.delimiter):
            # a blank record (a blank line, or delimiters and spaces only) is not a customer
            if index <= skip_through or not (fields and (fields[0].strip() or "".join(fields).strip())):
                continue
            numbers.append(index + 1)
            batch.append(fields[:-1] if trailing else fields)
            if len(batch) >= size:
                yield reader.read(given.rows, numbers, batch)
                given.rows += len(batch)
                numbers, batch = [], []
        if batch:
            yield reader.read(given.rows, numbers, batch)

    def _columnar_input(self) -> bytes | Path | None:
        """The file's UTF-8 bytes (or its path) when pyarrow splits its records as the csv module
        does, else None.

        That holds when: the text is UTF-8; the header is the first line (no blank line nor
        `sep=` line before it); no empty line anywhere (pyarrow skips them without counting, the
        rows' numbers count them); every line holding a quote is a whole record by the csv
        module's strict rules (no quoted field over several lines, no text after a closing
        quote: where the two could differ); no trailing delimiter on every row (its rule drops a
        field). Checked on the bytes in one pass.
        """
        if not COLUMNAR_READER or self._header_index != 0 or self._trailing:
            return None
        if self._text.codec not in ("utf-8", "utf-8-sig"):
            return None
        source = self._text.utf8_source()
        scan = _ColumnarScan(self.delimiter)
        if isinstance(source, bytes):
            return source if scan.exact(source, final=True) else None
        with source.open("rb") as handle:
            while block := handle.read(_SCAN_BLOCK_BYTES):
                if not scan.exact(block, final=False):
                    return None
        return source if scan.exact(b"", final=True) else None

    def _columnar_chunks(
        self, source: bytes | Path, reader: _ChunkReader, given: _Given,
    ) -> Iterator[RowChunk]:
        """The rows split by pyarrow's CSV reader (streaming, one block at a time), in chunks.

        Each record of the file is one line (`_columnar_input`), so the k-th line is record k: a
        row's number is its line. Rows whose field count differs from the header's are reported by
        the reader's invalid-row handler with their line and text; they are put back in place
        (malformed, or skipped when blank, as the csv module's path does).
        """
        import pyarrow as pa
        import pyarrow.csv as pacsv

        width, delimiter, limit = self._width, self.delimiter, csv.field_size_limit()
        invalid: dict[int, str] = {}

        def set_aside(row: Any) -> str:
            if row.number is None:  # never in serial reading; if it were, numbers are unknown
                raise _NotExactError
            invalid[row.number] = row.text
            return "skip"

        names = [str(i) for i in range(width)]
        stream = pacsv.open_csv(
            pa.BufferReader(source) if isinstance(source, bytes) else str(source),
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1, use_threads=False, block_size=_ARROW_BLOCK_BYTES,
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, quote_char='"', double_quote=True, escape_char=False,
                newlines_in_values=False, ignore_empty_lines=True, invalid_row_handler=set_aside,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), null_values=[],
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )
        pending = _Pending(width)
        line = 2  # the line of the next row (the header is line 1)
        with stream:
            for batch in stream:
                columns = [batch.column(i) for i in range(width)]
                if batch.num_rows and any(_longest(column) > limit for column in columns):
                    raise _NotExactError  # the csv module refuses a field this long: its error, its way
                texts = [column.to_numpy(zero_copy_only=False).tolist() for column in columns]
                taken, rows = 0, batch.num_rows
                while taken < rows or line in invalid:
                    if line in invalid:
                        fields = _fields(invalid.pop(line), delimiter)
                        if any(len(field) > limit for field in fields):
                            raise _NotExactError
                        pending.add_malformed(line, fields)
                        line += 1
                        continue
                    later = [n for n in invalid if n > line]
                    span = rows - taken if not later else min(rows - taken, min(later) - line)
                    pending.add_rows(line, [column[taken:taken + span] for column in texts])
                    taken += span
                    line += span
                while len(pending) >= self.chunk_rows:
                    yield self._give(reader, given, pending.take(self.chunk_rows))
        while line in invalid:  # rows set aside after the last valid row
            fields = _fields(invalid.pop(line), delimiter)
            if any(len(field) > limit for field in fields):
                raise _NotExactError
            pending.add_malformed(line, fields)
            line += 1
        if invalid:  # a line the reader skipped but did not account for: not understood
            raise _NotExactError
        if len(pending):
            yield self._give(reader, given, pending.take(len(pending)))

    def _give(self, reader: _ChunkReader, given: _Given, taken: _Taken) -> RowChunk:
        chunk = reader.read_columns(given.rows, taken.numbers, taken.columns, taken.malformed)
        given.rows += len(taken.numbers)
        given.last_index = taken.numbers[-1] - 1
        return chunk


COLUMNAR_READER = True
"""Split records with pyarrow's CSV reader where it is exact (`CustomerFileStream._columnar_input`);
False: with the csv module only (the tests compare the two)."""
_SCAN_BLOCK_BYTES = 1 << 22
_ARROW_BLOCK_BYTES = 1 << 20
_EMPTY_LINES = (b"\n\n", b"\r\r", b"\n\r")


class _ColumnarScan:
    """The check of `CustomerFileStream._columnar_input`, on the file's bytes block by block: no
    empty line, and every line holding a quote a whole record by the csv module's strict rules."""

    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter
        self.carry = b""  # the start of a line the next block ends
        self.tail = b""  # the last byte checked

    def exact(self, block: bytes, *, final: bool) -> bool:
        data = self.carry + block
        cut = len(data) if final else max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        part, self.carry = data[:cut], data[cut:]
        if not part:
            return True
        if (self.tail + part[:1]) in _EMPTY_LINES or any(empty in part for empty in _EMPTY_LINES):
            return False
        self.tail = part[-1:]
        endings = [ending for ending in (b"\n", b"\r") if ending in part]  # never search for one absent
        at = part.find(b'"')
        while at >= 0:
            start = max((part.rfind(ending, 0, at) for ending in endings), default=-1) + 1
            ends = [end for end in (part.find(ending, at) for ending in endings) if end >= 0]
            end = min(ends) if ends else len(part)
            try:
                list(csv.reader([part[start:end].decode("utf-8")], delimiter=self.delimiter, strict=True))
            except (csv.Error, UnicodeDecodeError):
                return False
            at = part.find(b'"', end)
        return True


def _fields(line: str, delimiter: str) -> list[str]:
    """A one-line record's fields as the csv module splits them."""
    return next(csv.reader([line], delimiter=delimiter), [])


def _longest(column: Any) -> int:
    """The longest text of a pyarrow string column, in bytes (at least its length in characters)."""
    import pyarrow.compute as pc

    longest = pc.max(pc.binary_length(column)).as_py()
    return int(longest or 0)


class _NotExactError(Exception):
    """The columnar reading met what only the csv module reads exactly: it reads on from there."""


@dataclass
class _Given:
    """How far the rows given so far went: their count, the record index of the last one."""

    rows: int
    last_index: int


@dataclass
class _Taken:
    numbers: list[int]
    columns: list[list[str]]
    malformed: dict[int, list[str]]


class _Pending:
    """Rows read but not yet given, as columns of text (a malformed row: blanks, its fields apart).

    Rows whose every field is white space are dropped here, as the csv module's path skips them.
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self.numbers: list[int] = []
        self.columns: list[list[str]] = [[] for _ in range(width)]
        self.malformed: dict[int, list[str]] = {}  # position among the pending rows -> fields

    def __len__(self) -> int:
        return len(self.numbers)

    def add_rows(self, first_line: int, columns: list[list[str]]) -> None:
        count = len(columns[0]) if columns else 0
        blank = _blank_rows(columns, count)
        if blank:
            keep = [k not in blank for k in range(count)]
            columns = [list(itertools.compress(column, keep)) for column in columns]
            self.numbers.extend(itertools.compress(range(first_line, first_line + count), keep))
        else:
            self.numbers.extend(range(first_line, first_line + count))
        for mine, theirs in zip(self.columns, columns, strict=True):
            mine.extend(theirs)

    def add_malformed(self, line: int, fields: list[str]) -> None:
        if not "".join(fields).strip():
            return  # blank: not a customer
        self.malformed[len(self.numbers)] = fields
        self.numbers.append(line)
        for column in self.columns:
            column.append("")

    def take(self, count: int) -> _Taken:
        taken = _Taken(
            numbers=self.numbers[:count], columns=[column[:count] for column in self.columns],
            malformed={k: fields for k, fields in self.malformed.items() if k < count},
        )
        del self.numbers[:count]
        for column in self.columns:
            del column[:count]
        self.malformed = {k - count: fields for k, fields in self.malformed.items() if k >= count}
        return taken


def _blank_rows(columns: list[list[str]], count: int) -> set[int]:
    """Positions of the rows whose every field is white space (found among each column's
    distinct texts: a column with no blank text means no blank row)."""
    blank: set[int] | None = None
    for column in columns:
        blanks = {text for text in set(column) if not text.strip()}
        if not blanks:
            return set()
        here = {k for k, text in enumerate(column) if text in blanks} if blank is None else {
            k for k in blank if column[k] in blanks
        }
        if not here:
            return set()
        blank = here
    return blank or set()


class _ColumnRows(Sequence[list[str]]):
    """A chunk's rows as written (`RowChunk.raw`), made from its columns only when one is asked for."""

    def __init__(self, columns: list[list[str]], malformed: Mapping[int, list[str]]) -> None:
        self._columns = columns
        self._malformed = malformed

    def __len__(self) -> int:
        return len(self._columns[0]) if self._columns else 0

    @overload
    def __getitem__(self, k: int) -> list[str]: ...
    @overload
    def __getitem__(self, k: slice) -> list[list[str]]: ...

    def __getitem__(self, k: int | slice) -> list[str] | list[list[str]]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if k in self._malformed:
            return list(self._malformed[k])
        return [column[k] for column in self._columns]


def _numbered_records(text: TextSource, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Every record of the text (blank lines included, as []) with its index, split by `delimiter`."""
    try:
        yield from enumerate(csv.reader(text.lines(), delimiter=delimiter))
    except csv.Error as exc:  # a field over the size limit: an opening quote never closed
        raise UnreadableFileError(
            ErrorType.UNREADABLE_FILE,
            f"cannot be split into rows ({exc}): a quote (\") is opened and never closed",
        ) from exc


def _records(text: str, delimiter: str = ",") -> list[list[str]]:
    """Every record of the text (blank lines included, as []) split with one delimiter."""
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:  # a field over the size limit: an opening quote never closed
        raise UnreadableFileError(
            ErrorType.UNREADABLE_FILE,
            f"cannot be split into rows ({exc}): a quote (\") is opened and never closed",
        ) from exc


def _scan_every_row(
    text: TextSource, delimiter: str, header_index: int, header: list[str], nameless: list[int],
) -> tuple[bool, frozenset[int]]:
    """One pass over every data row: is there one empty field more than the header on every
    row (then ignored), and which nameless header positions are empty in every row."""
    trailing = True
    empty = set(nameless)
    width = len(header)
    rows: list[list[str]] = []
    for index, fields in _numbered_records(text, delimiter):
        if index <= header_index or _is_blank(fields):
            continue
        if trailing and not (len(fields) == width + 1 and not fields[-1].strip()):
            trailing = False
        if empty:
            rows.append(fields)  # kept only while a nameless column may be empty throughout
            if len(rows) >= 10_000:
                _drop_filled(empty, rows, trailing_possible=trailing, width=width)
                rows = []
    _drop_filled(empty, rows, trailing_possible=trailing, width=width)
    return trailing, frozenset(empty)


def _drop_filled(empty: set[int], rows: list[list[str]], *, trailing_possible: bool, width: int) -> None:
    """Remove from `empty` the positions holding a value in one of `rows` (a nameless position is
    a header position, before any trailing field: trimming that field changes nothing here)."""
    for position in list(empty):
        if any(len(fields) > position and fields[position].strip() for fields in rows):
            empty.discard(position)


def _is_blank(fields: Sequence[str]) -> bool:
    return not "".join(fields).strip()


def _find_delimiter_and_header(text: TextSource) -> tuple[str, int]:
    """The file's delimiter and the index of its header record.

    The delimiter is the candidate that splits the header (the first non-blank record) into
    the most fields; a tie goes to the one whose next rows have the header's width most often.
    An Excel `sep=;` first line is obeyed: the header is then the next non-blank record.
    """
    sample = text.head(_DELIMITER_SAMPLE_CHARS)
    first_line = next((line for line in sample.splitlines() if line.strip()), "")
    declared = _EXCEL_SEP_LINE.match(first_line.strip())
    if declared and declared.group(1) in DELIMITERS:
        delimiter = declared.group(1)
        non_blank = 0
        for index, fields in _numbered_records(text, delimiter):
            if not _is_blank(fields):
                non_blank += 1
                if non_blank == 2:
                    return delimiter, index
        raise UnreadableFileError(ErrorType.EMPTY_FILE, "holds no header after its `sep=` line")
    scores: dict[str, tuple[int, int]] = {}
    header_indices: dict[str, int] = {}
    for candidate in DELIMITERS:
        records = _records(sample, candidate)
        header_index = _first_non_blank(records)
        if header_index is None:
            raise UnreadableFileError(ErrorType.EMPTY_FILE, "holds only blank lines")
        header_indices[candidate] = header_index
        scores[candidate] = (len(records[header_index]), _rows_matching_header(records, header_index))
    delimiter = max(DELIMITERS, key=lambda d: scores[d])  # max() keeps the first of equals: `,`
    if scores[delimiter][0] < 2:
        raise UnreadableFileError(
            ErrorType.UNREADABLE_FILE,
            "has a single column: no `,` `;` tab or `|` separates the header's names",
        )
    return delimiter, header_indices[delimiter]


def _first_non_blank(records: list[list[str]]) -> int | None:
    return next((i for i, fields in enumerate(records) if not _is_blank(fields)), None)


def _rows_matching_header(records: list[list[str]], header_index: int) -> int:
    width = len(records[header_index])
    sample = records[header_index + 1: header_index + 1 + _DELIMITER_SAMPLE_ROWS]
    return sum(1 for fields in sample if len(fields) == width)


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
class _ChunkReader:
    """Turns a batch of records into a RowChunk (rules 6 to 8), column by column."""

    names: list[str]
    positions: list[int]
    width: int
    delimiter: str
    numbers: frozenset[str]
    values: Mapping[str, Mapping[str, str]]
    decimal_commas: int = 0

    def read(self, start: int, numbers: list[int], raw: list[list[str]]) -> RowChunk:
        """A chunk from its records as the csv module split them."""
        problems: dict[int, list[tuple[str | None, str]]] = {}
        blank = [""] * self.width
        fitting = raw
        if set(map(len, raw)) != {self.width}:
            fitting = []
            for k, fields in enumerate(raw):
                if len(fields) == self.width:
                    fitting.append(fields)
                else:  # no cell assigned: read as a row of empty cells, then marked malformed
                    problems[k] = [(None, self._field_count_problem(numbers[k], fields))]
                    fitting.append(blank)
        by_position = list(zip(*fitting, strict=True)) if fitting else [()] * self.width
        return self._chunk(start, numbers, by_position, raw, problems)

    def read_columns(
        self, start: int, numbers: list[int], columns: list[list[str]], malformed: Mapping[int, list[str]],
    ) -> RowChunk:
        """A chunk from its columns of text (one per header position; a malformed row's cells
        blank there, its fields in `malformed` by position in the chunk)."""
        problems: dict[int, list[tuple[str | None, str]]] = {
            k: [(None, self._field_count_problem(numbers[k], fields))]
            for k, fields in sorted(malformed.items())
        }
        return self._chunk(start, numbers, columns, _ColumnRows(columns, malformed), problems)

    def _chunk(
        self, start: int, numbers: list[int], by_position: Sequence[Sequence[str]],
        raw: Sequence[Sequence[str]], problems: dict[int, list[tuple[str | None, str]]],
    ) -> RowChunk:
        cells: dict[str, list[str | None]] = {}
        for name, position in zip(self.names, self.positions, strict=True):
            written = by_position[position]
            coding = self.values.get(name)
            # white space only is empty: looked for among the column's distinct texts
            blanks = {v for v in set(written) if not v.strip()}
            if coding is not None:
                column = [None if v in blanks else coding.get(v, v) for v in written]
            elif blanks:
                column = [None if v in blanks else v for v in written]
            else:
                column = list(written)
            if name in self.numbers:
                self._decimal_commas_in(name, column, problems)
            cells[name] = column
        return RowChunk(start=start, numbers=numbers, cells=cells, raw=raw, problems=problems)

    def _decimal_commas_in(
        self, name: str, column: list[str | None], problems: dict[int, list[tuple[str | None, str]]],
    ) -> None:
        for k in [k for k, text in enumerate(column) if text is not None and "," in text]:
            text = column[k]
            assert text is not None
            if not _DECIMAL_COMMA.match(text) or (k in problems and problems[k][0][0] is None):
                continue
            if self.delimiter == ",":
                problems.setdefault(k, []).append((
                    name, f"`{text.strip()}` has a comma inside a number: write it "
                          "with a decimal point and no thousands separator",
                ))
                column[k] = None
            else:
                column[k] = text.replace(",", ".")
                self.decimal_commas += 1

    def _field_count_problem(self, number: int, fields: list[str]) -> str:
        problem = f"row {number} has {len(fields)} fields, the header {self.width}"
        if any("\n" in cell or "\r" in cell for cell in fields):
            problem += ": a quote (\") opened in this row is not closed where it should be"
        return problem
