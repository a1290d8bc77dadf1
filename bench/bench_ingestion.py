"""Validate + split of a 10,000-row raw file vs reading the same file with pandas.

    python bench/bench_ingestion.py

The file: 10,000 customers (the dataset cycled, unique ids) with a share of the injector's
row-level faults, so that the split writes both a good and a bad file. Ours: claim, validation
(file checks, type coercion, the Great Expectations suite, duplicates, consistency) and the
write-then-rename split. Baseline, in the same run on the same bytes: `pd.read_csv`. The first
run, which imports Great Expectations and builds the suite, is reported apart: a DAG task pays it
once. Must stay well under the one-minute schedule.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from core.error_types import ErrorType
from jobs.claim import claim_raw_file
from jobs.splitting import split_good_bad_rows
from jobs.validation import validate_customer_file
from model.contract import IDENTIFIER, TARGET
from model.data import DATASET_PATH
from scripts.inject_errors import inject_into_content

ROWS = 10_000
REPEATS = 7
FAULTS = (ErrorType.OUT_OF_RANGE, ErrorType.WRONG_TYPE, ErrorType.UNKNOWN_CATEGORY, ErrorType.MISSING_VALUE)


def dirty_file_content() -> bytes:
    source = pd.read_csv(DATASET_PATH, dtype=str).drop(columns=[TARGET])
    frame = pd.concat([source] * (ROWS // len(source) + 1), ignore_index=True).head(ROWS)
    frame[IDENTIFIER] = [f"B{i:06d}" for i in range(ROWS)]
    content = frame.to_csv(index=False).encode()
    rng = np.random.default_rng(42)
    for fault in FAULTS:
        content, _ = inject_into_content(content, fault, rng, 0.02)
    return content


def validate_and_split(content: bytes, work: Path) -> tuple[int, int]:
    raw, good, bad = work / "raw-data", work / "good_data", work / "bad_data"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "bench.csv").write_bytes(content)
    claimed = claim_raw_file(raw, raw / ".claims", "bench")
    assert claimed is not None
    outcome = validate_customer_file(claimed.path, file_name=claimed.original_name)
    result = split_good_bad_rows(claimed, outcome, good_data_dir=good, bad_data_dir=bad)
    return result.good_rows, result.bad_rows


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    content = dirty_file_content()
    with tempfile.TemporaryDirectory(prefix="bench-ingestion-") as folder:
        work = Path(folder)
        source = work / "source.csv"
        source.write_bytes(content)
        first = timed(lambda: validate_and_split(content, work))
        good_rows, bad_rows = validate_and_split(content, work)
        ours, bare = [], []
        for _ in range(REPEATS):  # interleaved, so both see the same machine load
            ours.append(timed(lambda: validate_and_split(content, work)))
            bare.append(timed(lambda: pd.read_csv(source)))
    ours_s, bare_s = statistics.median(ours), statistics.median(bare)
    print(
        f"ingestion validate+split {ROWS:,} rows ({good_rows:,} good, {bad_rows:,} bad): "
        f"{ours_s / bare_s:.1f}x pandas read_csv (ours {ours_s * 1000:.0f} ms, "
        f"read_csv {bare_s * 1000:.0f} ms, median of {REPEATS}; "
        f"first run incl. Great Expectations setup {first:.1f} s; schedule 60 s)"
    )


if __name__ == "__main__":
    main()
