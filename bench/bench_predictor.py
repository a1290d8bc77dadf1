"""The predictor (ONNX Runtime) vs the bare ONNX call, its thread setting, reason codes, scikit-learn.

    python -m bench.bench_predictor

Every figure is a ratio of two medians measured in this run on the same records (one record, and
10,000 drawn from the dataset):
- predictor.score (column-wise feeds, the run, the decision rule, reason codes) vs the bare
  `session.run` on feeds built beforehand: the cost of our Python around the graph;
- intra-op threads 2 vs 1 (the setting in model/predictor.py: ONNX_THREADS);
- reason codes: score with reasons vs without;
- the old scikit-learn path (records -> pandas frame -> pipeline.predict_proba) vs the ONNX path,
  the reference line.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench import _common
from model.onnx_export import PROBABILITIES_OUTPUT, records_to_feeds
from model.predictor import Predictor

ROWS = 10_000


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    one_thread, two_threads = Predictor(threads=1), Predictor(threads=2)
    for rows, repeats in ((1, 400), (ROWS, 15)):
        compare(one_thread, two_threads, rows, repeats)


def compare(one_thread: Predictor, two_threads: Predictor, rows: int, repeats: int) -> None:
    records = _common.sample_records(rows, seed=3)
    feeds = records_to_feeds(records)
    for predictor in (one_thread, two_threads):  # warm-up
        predictor.score(records)
    bare = median_ms(lambda: one_thread.session.run([PROBABILITIES_OUTPUT], feeds), repeats)
    ours = median_ms(lambda: one_thread.score(records), repeats)
    without_reasons = median_ms(lambda: one_thread.score(records, reasons=False), repeats)
    threads2 = median_ms(lambda: two_threads.score(records), repeats)
    sklearn = median_ms(lambda: one_thread.sklearn_predict_proba(records), max(5, repeats // 4))
    label = f"{rows:,} record{'s' if rows > 1 else ''}"
    print(f"predictor {label}: {ours / bare:.2f}x the bare ONNX run (predictor {ours:.3f} ms "
          f"with reasons, bare run {bare:.3f} ms, median of {repeats})")
    print(f"predictor {label}: intra-op threads 2 vs 1: {threads2 / ours:.2f}x "
          f"({threads2:.3f} ms vs {ours:.3f} ms)")
    print(f"predictor {label}: reason codes add {100 * (ours / without_reasons - 1):+.0f} % "
          f"({ours:.3f} ms vs {without_reasons:.3f} ms without)")
    print(f"predictor {label}: old scikit-learn path {sklearn / without_reasons:.1f}x the ONNX path "
          f"({sklearn:.3f} ms vs {without_reasons:.3f} ms)")


if __name__ == "__main__":
    main()
