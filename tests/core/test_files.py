"""core/files.py and core/settings.py: one writer, one lister, one decoder; settings read once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from core.error_types import ErrorType
from core.files import (
    UnreadableFileError,
    decode_text,
    list_visible_files,
    remove_orphan_temporaries,
    write_atomic,
)
from core.settings import REPO_ROOT, ApiClientSettings, ApiServerSettings, DataFolderSettings
from tests.scripts.helpers import snapshot


def test_folders_default_to_the_repository_and_follow_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RAW_DATA_DIR", "GOOD_DATA_DIR", "BAD_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    defaults = DataFolderSettings(_env_file=None)
    assert defaults.all() == (REPO_ROOT / "raw-data", REPO_ROOT / "good_data", REPO_ROOT / "bad_data")
    monkeypatch.setenv("BAD_DATA_DIR", str(tmp_path / "rejected"))
    assert DataFolderSettings(_env_file=None).bad_data_dir == tmp_path / "rejected"


def test_an_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """`API_TOKEN=` in a .env or compose file leaves the API open; it is not the empty token."""
    monkeypatch.setenv("API_TOKEN", "")
    monkeypatch.setenv("API_PORT", "")
    server = ApiServerSettings(_env_file=None)
    assert server.api_token is None and server.token_value() is None
    assert server.api_port == 8000


def test_former_variable_names_are_still_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PREDICT_CHUNK_SIZE", "API_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CHUNK_SIZE", "250")
    monkeypatch.setenv("REQUEST_TIMEOUT_SECONDS", "7.5")
    client = ApiClientSettings(_env_file=None)
    assert (client.predict_chunk_size, client.api_timeout_seconds) == (250, 7.5)
    monkeypatch.setenv("PREDICT_CHUNK_SIZE", "40")
    assert ApiClientSettings(_env_file=None).predict_chunk_size == 40


def test_a_failed_write_leaves_no_file_at_all(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_bytes(b"x")
    contents = {tmp_path / "a.csv": b"x\n1\n", tmp_path / "not-a-folder" / "b.csv": b"x\n2\n"}
    with pytest.raises(OSError):
        write_atomic(contents)
    assert snapshot(tmp_path) == {"not-a-folder": b"x"}


def test_files_appear_complete_under_their_names(tmp_path: Path) -> None:
    write_atomic({tmp_path / "a.csv": b"x\n1\n", tmp_path / "sub" / "b.csv": b"x\n2\n"})
    assert snapshot(tmp_path) == {"a.csv": b"x\n1\n", "sub/b.csv": b"x\n2\n"}


def test_a_rewrite_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a.csv"
    write_atomic({target: b"first version, longer\n"})
    write_atomic({target: b"second\n"})
    assert snapshot(tmp_path) == {"a.csv": b"second\n"}


def test_the_lister_sees_every_visible_file_and_no_hidden_one(tmp_path: Path) -> None:
    for name in ("b.csv", "A.CSV", "customers.txt", ".b.csv.1234.tmp", ".claims/x.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    assert [p.name for p in list_visible_files(tmp_path)] == ["A.CSV", "b.csv", "customers.txt"]
    assert list_visible_files(tmp_path / "missing") == []


def test_orphan_temporaries_of_a_killed_writer_are_removed_once_old(tmp_path: Path) -> None:
    old, young, data = tmp_path / ".a.csv.1.tmp", tmp_path / ".b.csv.2.tmp", tmp_path / "c.csv"
    for path in (old, young, data):
        path.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    os.utime(data, (hour_ago, hour_ago))
    assert remove_orphan_temporaries(tmp_path, older_than_seconds=600, now=time.time()) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.csv.2.tmp", "c.csv"]


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"a,b\n1,2\n", "a,b\n1,2\n"), (b"\xef\xbb\xbfa,b\n", "a,b\n"), ("é,x\n".encode(), "é,x\n"),
        (b"caf\xe9,x\n", "café,x\n"),  # Windows-1252, detected
        (b"\xff\xfea\x00,\x00b\x00", "a,b"),  # UTF-16 with its byte-order mark
    ],
)
def test_the_decoder_reads_utf8_with_or_without_bom_utf16_and_legacy_text(data: bytes, text: str) -> None:
    assert decode_text(data) == text


@pytest.mark.parametrize(
    ("data", "error_type", "detail"),
    [
        (b"", ErrorType.EMPTY_FILE, "no bytes"),
        (b"  \n\n", ErrorType.EMPTY_FILE, "no bytes"),
        (b"a,b\n" + b"1,2\n" * 40_000 + b"3,\x00\n", ErrorType.UNREADABLE_FILE, "NUL"),
        (bytes(range(128, 256)) * 3, ErrorType.UNREADABLE_FILE, "its encoding was not recognised"),
        (b"PK\x03\x04" + b"\x00" * 30, ErrorType.UNREADABLE_FILE, "is a zip archive"),
    ],
)
def test_the_decoder_refuses_what_is_not_text(data: bytes, error_type: ErrorType, detail: str) -> None:
    with pytest.raises(UnreadableFileError) as caught:
        decode_text(data)
    assert caught.value.error_type == error_type and detail in caught.value.detail
