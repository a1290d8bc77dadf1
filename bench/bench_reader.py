"""The one reader of customer files (core/reader.py) on a 10,000-row file vs pandas' C parser.

    python -m bench.bench_reader

Ours: `read_customer_file` (encoding, delimiter detection, header normalisation and aliases,
every cell as text, field counts, codings, decimal commas), then the text frame the ingestion
validates. Baseline, in the same run on the same bytes: `pd.read_csv(dtype=str)`, what the
ingestion read before. The records are split by pyarrow's CSV reader where it is exact, else by
the csv module (core/reader.py); the cells are handled column by column, then one object per row
(`FileRow`, the webapp's upload). This figure says what that costs against the one-minute schedule.
"""

from __future__ import annotations

import io
import statistics
import time

import pandas as pd

from core.reader import read_customer_file
from jobs.validation import text_frame
from model.contract import IDENTIFIER, TARGET, record_json_schema
from model.data import DATASET_PATH

ROWS = 10_000
REPEATS = 9


def file_content() -> bytes:
    source = pd.read_csv(DATASET_PATH, dtype=str).drop(columns=[TARGET])
    frame = pd.concat([source] * (ROWS // len(source) + 1), ignore_index=True).head(ROWS)
    frame[IDENTIFIER] = [f"B{i:06d}" for i in range(ROWS)]
    return frame.to_csv(index=False).encode()


def main() -> None:
    content = file_content()
    schema = record_json_schema()
    ours, bare = [], []
    for _ in range(REPEATS):  # interleaved, so both see the same machine load
        started = time.perf_counter()
        text_frame(read_customer_file(content, schema))
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        pd.read_csv(io.BytesIO(content), dtype=str)
        bare.append(time.perf_counter() - started)
    ours_s, bare_s = statistics.median(ours), statistics.median(bare)
    print(
        f"reader on {ROWS:,} rows: {ours_s / bare_s:.1f}x pandas read_csv(dtype=str) "
        f"(ours {ours_s * 1000:.0f} ms, read_csv {bare_s * 1000:.0f} ms, median of {REPEATS})"
    )


if __name__ == "__main__":
    main()
