"""scripts/split_dataset.py: N files of near-equal size, every row once, safe names, clear errors."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from core.settings import REPO_ROOT, DataFolderSettings
from model.contract import FEATURE_NAMES, IDENTIFIER, TARGET
from model.data import DATASET_PATH
from scripts import split_dataset as split
from tests.scripts.helpers import snapshot

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def read_parts(paths: list[Path]) -> list[pd.DataFrame]:
    return [pd.read_csv(p, dtype=str, keep_default_na=False) for p in paths]


@pytest.mark.parametrize("n_files", [1, 7, 7043])
def test_sizes_within_one_row_and_every_row_once(
    n_files: int, folders: DataFolderSettings, dataset: pd.DataFrame,
) -> None:
    paths = split.split_dataset(DATASET_PATH, folders.raw_data_dir, n_files, folders=folders)
    assert len(paths) == n_files == len(list(folders.raw_data_dir.glob("*.csv")))
    texts = [p.read_text().splitlines() for p in paths]
    sizes = [len(lines) - 1 for lines in texts]
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == len(dataset)
    assert {lines[0] for lines in texts} == {",".join([IDENTIFIER, *FEATURE_NAMES])}  # label dropped
    combined = pd.read_csv(io.StringIO("\n".join([texts[0][0], *(r for t in texts for r in t[1:])])))
    assert combined[IDENTIFIER].is_unique
    assert set(combined[IDENTIFIER]) == set(dataset[IDENTIFIER])
    pd.testing.assert_frame_equal(
        combined.sort_values(IDENTIFIER, ignore_index=True),
        dataset.drop(columns=[TARGET]).sort_values(IDENTIFIER, ignore_index=True),
        check_dtype=False,
    )


def test_files_keep_the_dataset_text_exactly(folders: DataFolderSettings) -> None:
    paths = split.split_dataset(DATASET_PATH, folders.raw_data_dir, 3, keep_label=True, folders=folders)
    source = DATASET_PATH.read_text().splitlines()
    lines = [line for p in paths for line in p.read_text().splitlines()[1:]]
    assert lines == source[1:]
    assert all(p.read_text().splitlines()[0] == source[0] for p in paths)


def test_seed_shuffles_reproducibly(folders: DataFolderSettings, tmp_path: Path) -> None:
    first = split.split_dataset(DATASET_PATH, tmp_path / "a", 4, seed=7, folders=folders)
    again = split.split_dataset(DATASET_PATH, tmp_path / "b", 4, seed=7, folders=folders)
    other = split.split_dataset(DATASET_PATH, tmp_path / "c", 4, seed=8, folders=folders)
    unseeded = split.split_dataset(DATASET_PATH, tmp_path / "d", 4, folders=folders)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert [p.read_bytes() for p in first] != [p.read_bytes() for p in other]
    first_ids = read_parts(first)[0][IDENTIFIER].tolist()
    assert first_ids != read_parts(unseeded)[0][IDENTIFIER].tolist()
    assert sorted(first_ids) != first_ids  # shuffled, not the dataset order


def test_names_never_collide_with_any_data_folder(folders: DataFolderSettings) -> None:
    raw = folders.raw_data_dir
    first = split.split_dataset(DATASET_PATH, raw, 2, folders=folders, now=NOW)
    assert [p.name for p in first] == [
        "customers_20260102T030405Z_001.csv", "customers_20260102T030405Z_002.csv",
    ]
    # ingestion has moved the first file away: its name is still taken, in good_data
    first[0].rename(folders.good_data_dir / first[0].name)
    first[1].unlink()
    (folders.bad_data_dir / "customers_20260102T030405Z-2_001_bad_rows.csv").write_text("x\n")
    before = snapshot(folders.good_data_dir.parent)
    second = split.split_dataset(DATASET_PATH, raw, 2, folders=folders, now=NOW)
    assert [p.name for p in second] == [
        "customers_20260102T030405Z-3_001.csv", "customers_20260102T030405Z-3_002.csv",
    ]
    after = snapshot(folders.good_data_dir.parent)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing overwritten


def test_no_temporary_files_are_left(folders: DataFolderSettings) -> None:
    split.split_dataset(DATASET_PATH, folders.raw_data_dir, 5, folders=folders)
    assert all(p.suffix == ".csv" and not p.name.startswith(".") for p in folders.raw_data_dir.iterdir())


def run_main(argv: list[str]) -> int:
    try:
        return split.main(argv)
    except SystemExit as stop:  # argparse's own errors (a non-integer N)
        return int(stop.code or 0)


def bad_dataset_cases(tmp_path: Path, small: Path) -> dict[str, tuple[list[str], str]]:
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 8)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    no_features = tmp_path / "no_features.csv"
    no_features.write_text("customer_id,churn\nC1,No\n")
    header_only = tmp_path / "header_only.csv"
    header_only.write_text(small.read_text().splitlines()[0] + "\n")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = str(tmp_path / "raw-data")
    return {
        "missing dataset": ([str(tmp_path / "nope.csv"), out, "2"], "dataset not found"),
        "dataset is a folder": ([str(tmp_path), out, "2"], "dataset not found"),
        "binary dataset": ([str(binary), out, "2"], "not a readable CSV"),
        "empty dataset": ([str(empty), out, "2"], "not a readable CSV"),
        "header-only dataset": ([str(header_only), out, "1"], "has no rows"),
        "dataset without features": ([str(no_features), out, "1"], "lacks the columns"),
        "zero files": ([str(small), out, "0"], "between 1 and the 5 rows"),
        "more files than rows": ([str(small), out, "6"], "between 1 and the 5 rows"),
        "non-integer count": ([str(small), out, "two"], "invalid int value"),
        "negative seed": ([str(small), out, "2", "--seed", "-1"], "non-negative"),
        "output folder under a file": ([str(small), str(blocker / "raw"), "2"], "cannot create the output"),
    }


CASES = [
    "missing dataset", "dataset is a folder", "binary dataset", "empty dataset", "header-only dataset",
    "dataset without features", "zero files", "more files than rows", "non-integer count",
    "negative seed", "output folder under a file",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_argument_gives_one_line_and_writes_nothing(
    case: str, tmp_path: Path,
    small_dataset: Path, folders: DataFolderSettings, capsys: pytest.CaptureFixture,
) -> None:
    argv, message = bad_dataset_cases(tmp_path, small_dataset)[case]
    before = snapshot(tmp_path)
    assert run_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.startswith("split_dataset: error: ")
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "raw-data").exists() or not any((tmp_path / "raw-data").iterdir())


def test_keep_label_on_a_dataset_without_label_is_refused(
    tmp_path: Path, small_dataset: Path, folders: DataFolderSettings, capsys: pytest.CaptureFixture,
) -> None:
    unlabelled = tmp_path / "unlabelled.csv"
    pd.read_csv(small_dataset, dtype=str).drop(columns=[TARGET]).to_csv(unlabelled, index=False)
    before = snapshot(tmp_path)
    assert run_main([str(unlabelled), str(tmp_path / "out"), "2", "--keep-label"]) == 2
    assert "has no churn column" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_command_line_writes_the_files(
    tmp_path: Path, small_dataset: Path, folders: DataFolderSettings,
) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "scripts/split_dataset.py", str(small_dataset), str(out), "2", "--keep-label"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 2 files" in done.stdout
    parts = read_parts(sorted(out.glob("*.csv")))
    assert [len(p) for p in parts] == [2, 3] or [len(p) for p in parts] == [3, 2]
    assert all(TARGET in p.columns for p in parts)
