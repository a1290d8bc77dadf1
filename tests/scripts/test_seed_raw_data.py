"""scripts/seed_raw_data.py: what `make run` uses to fill an empty raw-data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.settings import DataFolderSettings
from scripts import seed_raw_data as seeding
from tests.scripts.helpers import snapshot


def test_seeds_files_with_a_share_of_errors_and_leaves_no_staging(folders: DataFolderSettings) -> None:
    raw = folders.raw_data_dir
    results = seeding.seed_raw_data(raw, 10, 0.3, seed=5, folders=folders)
    files = sorted(raw.iterdir())
    assert [r.file for r in results] == files and len(files) == 10
    assert sum(r.injection is not None for r in results) == 3
    assert sorted(p.name for p in raw.parent.iterdir()) == ["bad_data", "good_data", "raw-data"]
    again = seeding.seed_raw_data(raw, 10, 0.3, seed=5, folders=folders)
    assert not {r.file for r in again} & set(files)  # a reseed never overwrites
    assert [r.file.read_bytes() for r in again] == [p.read_bytes() for p in files]


def test_if_empty_leaves_a_filled_folder_alone(
    folders: DataFolderSettings, capsys: pytest.CaptureFixture,
) -> None:
    assert seeding.main(["--files", "4", "--seed", "1", "--if-empty"]) == 0
    assert "seeded" in capsys.readouterr().out
    before = snapshot(folders.raw_data_dir)
    assert len(before) == 4
    assert seeding.main(["--files", "4", "--if-empty"]) == 0
    assert "not seeding" in capsys.readouterr().out
    assert snapshot(folders.raw_data_dir) == before


def test_bad_file_count_writes_nothing(folders: DataFolderSettings, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    before = snapshot(tmp_path)
    assert seeding.main(["--files", "0"]) == 2
    assert capsys.readouterr().err.startswith("seed_raw_data: error: N_FILES must be between 1")
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_data", "good_data", "raw-data"]


def test_files_are_staged_inside_raw_data_so_each_move_is_a_rename(
    folders: DataFolderSettings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In docker compose raw-data is a volume of its own: staging beside it (in the image's
    filesystem) made every move fail with `OSError: [Errno 18] Invalid cross-device link`."""
    raw = folders.raw_data_dir
    moves: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def recording_replace(source: str | Path, target: str | Path) -> None:
        moves.append((Path(source), Path(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", recording_replace)
    results = seeding.seed_raw_data(raw, 3, 0.0, seed=1, folders=folders)
    into_raw = [(source, target) for source, target in moves if target.parent == raw]
    assert [target for _, target in into_raw] == [r.file for r in results]
    for source, _ in into_raw:  # a hidden folder inside raw-data: same filesystem, never ingested
        assert source.parent.parent == raw and source.parent.name.startswith("."), source
    assert sorted(raw.iterdir()) == sorted(r.file for r in results)  # the staging folder is gone
