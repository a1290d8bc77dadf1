"""scripts/folders.py: the data folders from settings, and writes that are all-or-nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.folders import REPO_ROOT, DataFolders, write_files_atomically
from tests.scripts.helpers import snapshot


def test_folders_default_to_the_repository_and_follow_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RAW_DATA_DIR", "GOOD_DATA_DIR", "BAD_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    defaults = DataFolders(_env_file=None)
    assert defaults.all() == (REPO_ROOT / "raw-data", REPO_ROOT / "good_data", REPO_ROOT / "bad_data")
    monkeypatch.setenv("BAD_DATA_DIR", str(tmp_path / "rejected"))
    assert DataFolders(_env_file=None).bad_data_dir == tmp_path / "rejected"


def test_a_failed_write_leaves_no_file_at_all(tmp_path: Path) -> None:
    contents = {tmp_path / "a.csv": b"x\n1\n", tmp_path / "missing-folder" / "b.csv": b"x\n2\n"}
    with pytest.raises(FileNotFoundError):
        write_files_atomically(contents)
    assert snapshot(tmp_path) == {}


def test_files_appear_complete_under_their_names(tmp_path: Path) -> None:
    write_files_atomically({tmp_path / "a.csv": b"x\n1\n", tmp_path / "b.csv": b"x\n2\n"})
    assert snapshot(tmp_path) == {"a.csv": b"x\n1\n", "b.csv": b"x\n2\n"}
