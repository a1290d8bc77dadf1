"""Seed the raw-data folder: split the dataset into files, then spoil a share of them.

    python -m scripts.seed_raw_data [--files 20] [--error-share 0.3] [--row-share 0.1] [--seed 42]
                                    [--if-empty]

What `make run` calls on an empty raw-data, so that a newcomer sees the whole flow (good files
scored, bad ones alerted on) within minutes. The files are prepared in a hidden staging folder
inside raw-data and moved in one by one, already dirty: the ingestion DAG never sees a clean file
that is about to be spoiled, nor a half-written one (hidden names are never ingested). The
staging folder is inside raw-data, not beside it, because a rename only works within one
filesystem: in docker compose raw-data is a volume of its own, and its parent is the image's
filesystem (a rename from there fails with `OSError: [Errno 18] Invalid cross-device link`).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from core.settings import DataFolderSettings
from model.data import DATASET_PATH
from scripts.inject_errors import FileInjection, inject_errors, raw_files
from scripts.split_dataset import OneLineArgumentParser, UsageError, split_dataset


def seed_raw_data(
    raw_dir: Path,
    n_files: int,
    error_share: float,
    seed: int | None,
    *,
    row_share: float = 0.1,
    dataset: Path = DATASET_PATH,
    folders: DataFolderSettings | None = None,
) -> list[FileInjection]:
    """Write n_files new raw files into raw_dir, a share of them with injected errors.

    Returns one FileInjection per file (injection None for the clean ones), paths in raw_dir.
    """
    folders = folders or DataFolderSettings()
    raw_dir.mkdir(parents=True, exist_ok=True)
    # inside raw_dir: on the destination's filesystem, so that os.replace below is a rename
    staging = Path(tempfile.mkdtemp(prefix=".seed-staging-", dir=raw_dir))
    try:
        paths = split_dataset(dataset, staging, n_files, seed=seed, folders=folders)
        injected = {r.file.name: r for r in inject_errors(staging, share=error_share, seed=seed,
                                                           row_share=row_share)}
        for path in paths:  # os.replace: each file appears whole, never half-written
            os.replace(path, raw_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [
        replace(injected.get(p.name, FileInjection(p, None)), file=raw_dir / p.name) for p in paths
    ]


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog="seed_raw_data", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20, help="how many raw files")
    parser.add_argument("--error-share", type=float, default=0.3, help="share of files with errors")
    parser.add_argument("--row-share", type=float, default=0.1, help="share of rows in such a file")
    parser.add_argument("--seed", type=int, default=None, help="same seed, same file contents")
    parser.add_argument("--if-empty", action="store_true", help="do nothing when raw-data has CSV files")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    raw_dir = DataFolderSettings().raw_data_dir
    if args.if_empty and raw_dir.is_dir() and raw_files(raw_dir):
        print(f"{raw_dir} already holds CSV files: not seeding")
        return 0
    try:
        results = seed_raw_data(
            raw_dir, args.files, args.error_share, seed, row_share=args.row_share,
        )
    except UsageError as error:
        print(f"seed_raw_data: error: {error}", file=sys.stderr)
        return 2
    dirty = [r for r in results if r.injection is not None]
    print(f"seeded {raw_dir} with {len(results)} files, {len(dirty)} with injected errors (seed {seed})")
    for result in dirty:
        print(result.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
