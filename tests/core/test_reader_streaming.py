"""The reader streams (issue 25): a file read chunk by chunk, at any chunk size, from bytes or from
disk, in memory or block by block, gives the same rows, cells, problems and notes."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

import core.files
from core.files import UnreadableFileError, open_text
from core.reader import open_customer_file, read_customer_file
from model.contract import record_json_schema
from tests.field_case_outcomes import FIELD_CASES_DIR

SCHEMA = record_json_schema()
FIELD_CASES = sorted(FIELD_CASES_DIR.glob("*.csv"))


def _read(source: bytes | Path, chunk_rows: int) -> tuple:
    stream = open_customer_file(source, SCHEMA, chunk_rows=chunk_rows)
    rows = [row for chunk in stream.chunks() for row in chunk.rows()]
    return stream.columns, stream.encoding, stream.delimiter, stream.header_row, rows, stream.notes


def _whole(data: bytes) -> tuple:
    table = read_customer_file(data, SCHEMA)
    return table.columns, table.encoding, table.delimiter, table.header_row, list(table.rows), table.notes


@pytest.mark.parametrize("path", FIELD_CASES, ids=lambda p: p.name)
@pytest.mark.parametrize("chunk_rows", [1, 2, 1000])
def test_every_field_case_reads_the_same_at_any_chunk_size_and_from_disk_block_by_block(
    path: Path, chunk_rows: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        expected = _whole(path.read_bytes())
    except UnreadableFileError as refused:
        monkeypatch.setattr(core.files, "IN_MEMORY_TEXT_BYTES", 0)
        with pytest.raises(UnreadableFileError) as again:
            _read(path, chunk_rows)
        assert again.value.error_type == refused.error_type
        return
    assert _read(path.read_bytes(), chunk_rows) == expected
    monkeypatch.setattr(core.files, "IN_MEMORY_TEXT_BYTES", 0)  # the large-file path
    assert _read(path, chunk_rows) == expected


CONTENT = "customer_id,tenure,contract\nC1,12,One year\n\nC2,7,Two year\n"


@pytest.mark.parametrize(("data", "encoding"), [
    (CONTENT.encode(), "UTF-8"),
    (codecs.BOM_UTF8 + CONTENT.encode(), "UTF-8 with BOM"),
    (codecs.BOM_UTF16_LE + CONTENT.encode("utf-16-le"), "UTF-16 with BOM"),
    ((CONTENT + "C3,1,Café année\n").encode("cp1252"), "Windows-1252 (detected)"),
])
def test_a_large_file_is_decoded_block_by_block_as_a_small_one_is(
    data: bytes, encoding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "file.csv"
    path.write_bytes(data)
    small = open_text(data)
    monkeypatch.setattr(core.files, "IN_MEMORY_TEXT_BYTES", 0)
    monkeypatch.setattr(core.files, "_BLOCK_BYTES", 7)  # characters split across blocks
    large = open_text(path)
    assert (large.encoding, "".join(large.lines())) == (small.encoding, "".join(small.lines()))
    assert small.encoding == encoding


@pytest.mark.parametrize(("data", "detail"), [
    (b"   \n\n", "has no bytes"),
    (b"a,b\n1,\x002\n", "holds a NUL byte at byte 6"),
    (b"a,b\n" + b"\x01\x02,\x03\n" * 50, "is binary content"),
])
def test_a_large_file_is_refused_as_a_small_one_is(
    data: bytes, detail: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "file.csv"
    path.write_bytes(data)
    with pytest.raises(UnreadableFileError) as small:
        open_text(data)
    monkeypatch.setattr(core.files, "IN_MEMORY_TEXT_BYTES", 0)
    with pytest.raises(UnreadableFileError) as large:
        open_text(path)
    assert large.value.error_type == small.value.error_type
    assert large.value.detail.startswith(detail) and small.value.detail.startswith(detail)
