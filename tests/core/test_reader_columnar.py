"""pyarrow's CSV reader splits the records where it is exact, the csv module everywhere else (issue 25):
both give the same rows, numbers, cells, fields as written, problems, notes and refusals, at any
chunk size, from bytes and from disk, including a switch to the csv module midway."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

import core.files
import core.reader
from core.error_types import ErrorType
from core.files import UnreadableFileError
from core.reader import open_customer_file
from model.contract import FEATURE_NAMES, IDENTIFIER, record_json_schema
from tests.field_case_outcomes import FIELD_CASES_DIR

SCHEMA = record_json_schema()
FIELD_CASES = sorted(FIELD_CASES_DIR.glob("*.csv"))
# field cases the columnar reader cannot split exactly (a blank line before the header, a
# trailing delimiter on every row): the csv module reads them
CSV_ONLY = {"blank_lines_before_header.csv", "trailing_delimiter_every_row.csv"}


def _read(source: bytes | Path, chunk_rows: int, *, columnar: bool, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """Everything a reader gives, chunk by chunk; a refusal as its type and detail, after the
    chunks given before it."""
    monkeypatch.setattr(core.reader, "COLUMNAR_READER", columnar)
    chunks: list[tuple] = []
    stream = None
    try:
        stream = open_customer_file(source, SCHEMA, chunk_rows=chunk_rows)
        for chunk in stream.chunks():
            chunks.append((
                chunk.start, chunk.numbers, chunk.cells, [list(fields) for fields in chunk.raw],
                chunk.problems, [row for row in chunk.rows()],
            ))
    except UnreadableFileError as refused:
        return chunks, (refused.error_type, refused.detail), stream.split_by if stream else None
    return chunks, (stream.columns, stream.source_columns, stream.notes, stream.header_row), stream.split_by


@pytest.mark.parametrize("path", FIELD_CASES, ids=lambda p: p.name)
@pytest.mark.parametrize("chunk_rows", [1, 2, 1000])
def test_every_field_case_reads_the_same_with_either_splitter(
    path: Path, chunk_rows: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for source in (path.read_bytes(), path):
        csv_only = _read(source, chunk_rows, columnar=False, monkeypatch=monkeypatch)
        columnar = _read(source, chunk_rows, columnar=True, monkeypatch=monkeypatch)
        assert columnar[:2] == csv_only[:2]
        if not isinstance(csv_only[1][0], ErrorType):  # read, not refused: who split it
            assert csv_only[2] == "csv"
            assert columnar[2] == ("csv" if path.name in CSV_ONLY else "pyarrow")


_TEXTS = ["1", "0", " 2 ", "12", "12.5", "x", "NA", "", "  ", "1e1", "Yes", "No", "DSL", "29,85", "-1", "inf",
          '"1,5"', '"x""y"', '""', 'ab"c', '" 7 "', '"Yes"', '"a;b"']


def _tricky_lines(rng: random.Random, rows: int, delimiter: str) -> Iterator[str]:
    """Data lines of every kind the reader has a rule for (quoted fields too), none empty and
    none with a quoted field over two lines."""
    width = 1 + len(FEATURE_NAMES)
    for n in range(rows):
        kind = rng.random()
        cells = [f"C{n:05d}"] + [rng.choice(_TEXTS) for _ in range(width - 1)]
        if kind < 0.05:
            cells = cells[: rng.randrange(1, width)]  # too few fields
        elif kind < 0.08:
            cells = cells + ["extra"] * rng.randrange(1, 3)  # too many
        elif kind < 0.11:
            cells = [" "] * width  # blank: not a customer
        elif kind < 0.13:
            cells = ["  "]  # a line of spaces
        elif kind < 0.15:
            cells = [""] * rng.randrange(2, width + 3)  # delimiters only
        yield delimiter.join(cells)


@pytest.mark.parametrize("seed", range(6))
def test_generated_files_read_the_same_with_either_splitter(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(seed)
    delimiter = ",;"[seed % 2]
    ending = ["\n", "\r\n", "\r"][seed % 3]
    header = delimiter.join([IDENTIFIER, *FEATURE_NAMES])
    lines = [header, *_tricky_lines(rng, 400, delimiter)]
    text = ending.join(lines) + (ending if seed % 4 else "")
    data = (b"\xef\xbb\xbf" if seed == 3 else b"") + text.encode()
    path = tmp_path / "tricky.csv"
    path.write_bytes(data)
    monkeypatch.setattr(core.reader, "_ARROW_BLOCK_BYTES", 700)  # many blocks: rows set aside at their edges
    monkeypatch.setattr(core.files, "IN_MEMORY_TEXT_BYTES", 0)  # the large-file path too
    for chunk_rows in (1, 7, 1000):
        for source in (data, path):
            csv_only = _read(source, chunk_rows, columnar=False, monkeypatch=monkeypatch)
            columnar = _read(source, chunk_rows, columnar=True, monkeypatch=monkeypatch)
            assert columnar[:2] == csv_only[:2], (chunk_rows, type(source))
            assert columnar[2] == "pyarrow"
            assert any(chunk[4] for chunk in columnar[0])  # malformed rows were met


@pytest.mark.parametrize("chunk_rows", [2, 50])
def test_a_field_over_the_csv_modules_limit_switches_to_it_after_the_rows_given(
    chunk_rows: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The csv module refuses a field over its size limit: the columnar reading hands over to it
    from the first row it did not give, and the rows, then the refusal, are the csv module's."""
    limit = csv.field_size_limit(1000)  # above the header as one field (its delimiter is tried)
    try:
        header = ",".join([IDENTIFIER, *FEATURE_NAMES])
        row = ",".join(["C1", *["1"] * len(FEATURE_NAMES)])
        # past the first 64 KiB, where the delimiter is detected (a refusal there comes first)
        lines = [header, *[row] * 2000, "C2," + "9" * 3000 + ",1" * (len(FEATURE_NAMES) - 1), *[row] * 5]
        path = tmp_path / "long.csv"
        path.write_text("\n".join(lines) + "\n")
        monkeypatch.setattr(core.reader, "_ARROW_BLOCK_BYTES", 4000)
        csv_only = _read(path, chunk_rows, columnar=False, monkeypatch=monkeypatch)
        columnar = _read(path, chunk_rows, columnar=True, monkeypatch=monkeypatch)
    finally:
        csv.field_size_limit(limit)
    assert columnar[:2] == csv_only[:2]
    assert (csv_only[2], columnar[2]) == ("csv", "pyarrow, then csv")
    assert csv_only[1][0].value == "unreadable_file"
    assert len(csv_only[0]) == 2000 // chunk_rows  # every row before the long field was given


@pytest.mark.parametrize(("text", "why"), [
    ('customer_id,tenure\nC1,"12\n"\nC2,3\n', "a quoted field over two lines"),
    ('customer_id,tenure\nC1,"12"3\nC2,3\n', "text after a closing quote"),
    ('customer_id,tenure\nC1,a"b,"3\nC2",3\n', "a quote opened after a literal one"),
    ("customer_id,tenure\nC1,12\n\nC2,3\n", "an empty line"),
    ("customer_id,tenure\r\nC1,12\r\n\r\nC2,3\r\n", "an empty line (CRLF)"),
    ("customer_id,tenure\rC1,12\r\rC2,3\r", "an empty line (CR)"),
    ("sep=,\ncustomer_id,tenure\nC1,12\n", "a header after a sep= line"),
    ("customer_id,tenure\nC1,12\nC2,3\n".encode("cp1252").decode("latin-1") + "C3,\u00e9\n", "not UTF-8"),
])
def test_what_the_columnar_reader_cannot_split_exactly_goes_to_the_csv_module(
    text: str, why: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = text.encode("cp1252") if why == "not UTF-8" else text.encode()
    csv_only = _read(data, 1, columnar=False, monkeypatch=monkeypatch)
    columnar = _read(data, 1, columnar=True, monkeypatch=monkeypatch)
    assert columnar == csv_only
    assert columnar[2] == "csv", why


def test_an_empty_line_across_two_scanned_blocks_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    header = ",".join([IDENTIFIER, *FEATURE_NAMES])
    row = ",".join(["C1", *["1"] * len(FEATURE_NAMES)])
    text = header + "\n" + row + "\n"
    monkeypatch.setattr(core.reader, "_SCAN_BLOCK_BYTES", len(text))  # "\n" | "\n" at the edge
    path = tmp_path / "edge.csv"
    path.write_text(text + "\n" + row + "\n")
    monkeypatch.setattr(core.files, "IN_MEMORY_TEXT_BYTES", 0)
    assert _read(path, 5, columnar=True, monkeypatch=monkeypatch)[2] == "csv"
