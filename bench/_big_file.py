"""A raw customer file of any size, written in constant memory, for the ingestion benches.

The rows are the 10,000-row dirty block of bench/bench_ingestion.py (the dataset cycled, with a
share of the injector's row-level faults: out of range, wrong type, unknown category, missing
value) repeated as often as needed, each copy with its own customer ids, so that the file has
the same share of bad rows at any size and no duplicate customers.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from core.error_types import ErrorType
from model.contract import IDENTIFIER, TARGET
from model.data import DATASET_PATH
from scripts.inject_errors import inject_into_content

BLOCK_ROWS = 10_000
FAULTS = (ErrorType.OUT_OF_RANGE, ErrorType.WRONG_TYPE, ErrorType.UNKNOWN_CATEGORY, ErrorType.MISSING_VALUE)
FAULT_SHARE = 0.02


def dirty_block(rows: int = BLOCK_ROWS, seed: int = 42) -> bytes:
    """`rows` customers (ids B000000...) with FAULT_SHARE of each fault in FAULTS, as CSV bytes."""
    source = pd.read_csv(DATASET_PATH, dtype=str).drop(columns=[TARGET])
    frame = pd.concat([source] * (rows // len(source) + 1), ignore_index=True).head(rows)
    frame[IDENTIFIER] = [f"B{i:06d}" for i in range(rows)]
    content = frame.to_csv(index=False).encode()
    rng = np.random.default_rng(seed)
    for fault in FAULTS:
        content, _ = inject_into_content(content, fault, rng, FAULT_SHARE)
    return content


def write_big_file(path: Path, rows: int) -> int:
    """Write `rows` data rows (plus the header) to `path`; returns the file's size in bytes.

    The block's records are re-keyed per copy (`B<copy>-<row>`), everything else as written.
    """
    block = dirty_block()
    records = list(csv.reader(io.StringIO(block.decode(), newline="")))
    header, body = records[0], records[1:]
    id_position = header.index(IDENTIFIER)
    written = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        copy = 0
        while written < rows:
            batch = []
            for fields in body[: rows - written]:
                fields = list(fields)
                if fields[id_position]:
                    fields[id_position] = f"B{copy:05d}-{fields[id_position][1:]}"
                batch.append(fields)
            writer.writerows(batch)
            written += len(batch)
            copy += 1
    return path.stat().st_size
