"""Predictor on 10,000 records vs the bare pipeline call on the same, already built, frame.

    python bench/bench_predictor.py

Prints the ratio (goal: close to 1; the difference is the cost of turning JSON-like records into
the frame) and the absolute medians.
"""

from __future__ import annotations

import statistics
import time

from model.contract import FEATURE_NAMES
from model.data import load_dataset, records_to_frame
from model.predictor import Predictor

ROWS = 10_000
REPEATS = 15


def median_seconds(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    predictor = Predictor()
    data = load_dataset()[list(FEATURE_NAMES)]
    sample = data.sample(ROWS, replace=True, random_state=0).reset_index(drop=True)
    records = [
        {k: (None if v != v else v) for k, v in row.items()} for row in sample.to_dict("records")
    ]
    frame = records_to_frame(records)
    bare = median_seconds(lambda: predictor.pipeline.predict_proba(frame))
    ours = median_seconds(lambda: predictor.predict(records))
    print(
        f"predictor 10k records: {ours / bare:.2f}x the bare pipeline call "
        f"(predictor {ours * 1000:.1f} ms, bare {bare * 1000:.1f} ms, median of {REPEATS})"
    )


if __name__ == "__main__":
    main()
