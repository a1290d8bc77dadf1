"""Split the dataset into N raw files, to simulate a continuous flow of customer records.

    python scripts/split_dataset.py DATASET RAW_DATA_DIR N_FILES [--seed S] [--keep-label]

N_FILES is a number of files: their sizes differ by one row at most and every row lands in
exactly one file. The identifier column is kept (it traces a row to its prediction); the label is
dropped unless --keep-label. Without --seed the dataset order is kept; with it, rows are shuffled
reproducibly first. File names carry a run id (`customers_<UTC time>_<n>.csv`) that is new across
the raw, good and bad data folders, so a split never overwrites or shadows an earlier file.
A bad argument prints one line and exits with code 2, having written nothing.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd

from core.files import write_atomic
from core.settings import DataFolderSettings
from model.contract import FEATURE_NAMES, IDENTIFIER, TARGET
from model.data import load_dataset

FILE_PREFIX = "customers"


class UsageError(Exception):
    """A bad command-line argument: reported on one line, exit code 2, nothing written."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse prints the usage block on errors; a scheduler log wants one line per failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def read_dataset(path: Path) -> pd.DataFrame:
    """The dataset with the contract's types, or a UsageError saying why it cannot be used."""
    if not path.is_file():
        raise UsageError(f"dataset not found: {path}")
    try:
        frame = load_dataset(path)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(f"dataset {path} is not a readable CSV: {reason}") from error
    missing = [name for name in (IDENTIFIER, *FEATURE_NAMES) if name not in frame.columns]
    if missing:
        raise UsageError(f"dataset {path} lacks the columns {', '.join(missing)}")
    if frame.empty:
        raise UsageError(f"dataset {path} has no rows")
    return frame


def check_file_count(n_files: int, n_rows: int) -> None:
    if not 1 <= n_files <= n_rows:
        raise UsageError(f"N_FILES must be between 1 and the {n_rows} rows of the dataset, got {n_files}")


def prepare_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the output folder {folder}: {error.strerror or error}") from error


def split_rows(frame: pd.DataFrame, n_files: int, seed: int | None = None) -> list[bytes]:
    """N CSV texts of consecutive rows, sizes differing by one row at most; shuffled when seeded.

    The frame is rendered once and its lines dealt out, which is what keeps a split into
    thousands of one-row files fast (one to_csv per file costs a millisecond each).
    """
    if seed is not None:
        frame = frame.iloc[np.random.default_rng(seed).permutation(len(frame))]
    header, *rows = frame.to_csv(index=False).splitlines(keepends=True)
    if len(rows) != len(frame):  # a quoted value with a line break: fall back to one render per file
        bounds = _bounds(len(frame), n_files)
        return [frame.iloc[a:b].to_csv(index=False).encode() for a, b in itertools.pairwise(bounds)]
    bounds = _bounds(len(rows), n_files)
    return [(header + "".join(rows[a:b])).encode() for a, b in itertools.pairwise(bounds)]


def _bounds(n_rows: int, n_files: int) -> list[int]:
    return np.linspace(0, n_rows, n_files + 1).round().astype(int).tolist()


def choose_run_id(folders: Iterable[Path], now: datetime | None = None) -> str:
    """`customers_<UTC time>`, with a counter appended while any data folder already uses it."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    taken = existing_names(folders)
    run_id, counter = f"{FILE_PREFIX}_{stamp}", 1
    while any(f"{run_id}_" in name for name in taken):
        counter += 1
        run_id = f"{FILE_PREFIX}_{stamp}-{counter}"
    return run_id


def existing_names(folders: Iterable[Path]) -> set[str]:
    return {path.name for folder in folders if folder.is_dir() for path in folder.rglob("*")}


def file_names(run_id: str, n_files: int) -> list[str]:
    width = max(3, len(str(n_files)))
    return [f"{run_id}_{index:0{width}d}.csv" for index in range(1, n_files + 1)]


def split_dataset(
    dataset: Path,
    out_dir: Path,
    n_files: int,
    *,
    seed: int | None = None,
    keep_label: bool = False,
    folders: DataFolderSettings | None = None,
    now: datetime | None = None,
) -> list[Path]:
    """Write the dataset as N raw files in `out_dir` and return their paths, in order.

    Every argument is checked before anything is written; a UsageError says what is wrong.
    """
    if seed is not None and seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed}")
    frame = read_dataset(dataset)
    check_file_count(n_files, len(frame))
    if not keep_label:
        frame = frame.drop(columns=[TARGET], errors="ignore")
    elif TARGET not in frame.columns:
        raise UsageError(f"--keep-label given but dataset {dataset} has no {TARGET} column")
    prepare_folder(out_dir)
    run_id = choose_run_id([out_dir, *(folders or DataFolderSettings()).all()], now)
    paths = [out_dir / name for name in file_names(run_id, n_files)]
    parts = split_rows(frame, n_files, seed)
    write_atomic(dict(zip(paths, parts, strict=True)))
    return paths


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog="split_dataset", description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="the source CSV, e.g. data/telco_churn.csv")
    parser.add_argument("raw_data_dir", type=Path, help="where the files are written")
    parser.add_argument("n_files", type=int, help="how many files (not rows)")
    parser.add_argument("--seed", type=int, default=None, help="shuffle the rows reproducibly first")
    parser.add_argument("--keep-label", action="store_true", help=f"keep the {TARGET} column")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        paths = split_dataset(
            args.dataset, args.raw_data_dir, args.n_files, seed=args.seed, keep_label=args.keep_label,
        )
    except UsageError as error:
        print(f"split_dataset: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} files to {args.raw_data_dir}: {paths[0].name} ... {paths[-1].name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
