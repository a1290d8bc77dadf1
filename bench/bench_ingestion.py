"""Validate + split of a large raw file vs pyarrow's `read_csv` of the same file, and its peak memory.

    python -m bench.bench_ingestion                    # 1,000,000 then 10,000,000 rows (`make bench`)
    python -m bench.bench_ingestion --rows 1000000     # one size (10,000,000: ~2.6 GB of disk, minutes)

The file (bench/_big_file.py): the dataset cycled with unique customer ids and 2 % each of four
row-level faults (out of range, wrong type, unknown category, missing value), written to a temp
folder and removed at the end. Ours, in a child process of its own (its peak RSS, VmHWM, is its own):
claim, validation (the one reader, chunk by chunk; Great Expectations on the first rows, the same
expectations column by column after; duplicates; the cross-field rule) and the streaming split.
Baseline, in the same run on the same bytes: `pyarrow.csv.read_csv` (multi-threaded, all in
memory). Goals (issue 25): within 40x the baseline, peak RSS within 1 GB, at 1M and at 10M rows.
Each size prints one line: the ratio and the peak RSS, each with its goal and "met" or "NOT met".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._big_file import write_big_file

GOAL_RATIO = 40.0
GOAL_RSS_MB = 1024.0
BASELINE_REPEATS = 3


def validate_and_split(work: Path) -> dict[str, float]:
    """Run in the child: ingest work/raw-data/bench.csv; returns its timings and row counts."""
    from core.settings import IngestionSettings
    from jobs.claim import claim_raw_file
    from jobs.splitting import split_good_bad_rows
    from jobs.validation import _validation_definition, validate_customer_file

    _validation_definition()  # a DAG task's process pays this once; reported apart
    raw = work / "raw-data"
    claimed = claim_raw_file(raw, raw / ".claims", "bench")
    assert claimed is not None
    chunk_rows = IngestionSettings().ingestion_chunk_rows
    started = time.perf_counter()
    outcome = validate_customer_file(claimed.path, file_name=claimed.original_name, chunk_rows=chunk_rows)
    validated = time.perf_counter()
    result = split_good_bad_rows(
        claimed, outcome, good_data_dir=work / "good_data", bad_data_dir=work / "bad_data",
        chunk_rows=chunk_rows,
    )
    done = time.perf_counter()
    return {
        "validate_s": validated - started, "split_s": done - validated,
        "good": result.good_rows, "bad": result.bad_rows, "chunk_rows": chunk_rows,
        "peak_mb": own_peak_mb(),
    }


def own_peak_mb() -> float:
    """This process's peak RSS in MB: VmHWM, the high-water mark of its own address space.

    Not getrusage's ru_maxrss: Linux carries into it the parent's RSS at fork time (the parent
    holds pyarrow's read of the file: 4.7 GB at 10,000,000 rows), whatever the child uses.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status: the peak RSS is measured on Linux only")


def pyarrow_read(path: Path) -> float:
    import pyarrow.csv as pacsv

    started = time.perf_counter()
    pacsv.read_csv(path)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(validate_and_split(args.child)))
        return
    for rows in args.rows:
        print(measure(rows), flush=True)


def measure(rows: int) -> str:
    """One size: the file written, pyarrow's read, ours in a child process; the line to print."""
    with tempfile.TemporaryDirectory(prefix="bench-ingestion-") as folder:
        work = Path(folder)
        (work / "raw-data").mkdir()
        path = work / "source.csv"
        size = write_big_file(path, rows)
        os.link(path, work / "raw-data" / "bench.csv")  # the ingestion claims and removes this name
        bare = [pyarrow_read(path)]
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_ingestion", "--child", str(work)],
            stdout=subprocess.PIPE, text=True,
        )
        out, _ = child.communicate()
        if child.returncode:
            raise SystemExit(f"the ingestion child failed with exit code {child.returncode}")
        ours = json.loads(out.strip().splitlines()[-1])
        peak_mb = ours["peak_mb"]
        wall = time.perf_counter() - started
        bare += [pyarrow_read(path) for _ in range(BASELINE_REPEATS - 1)]
    bare_s = statistics.median(bare)
    ours_s = ours["validate_s"] + ours["split_s"]
    ratio = ours_s / bare_s
    return (
        f"ingestion validate+split {rows:,} rows ({size / 1e6:.0f} MB; {ours['good']:,} good, "
        f"{ours['bad']:,} bad; chunks of {ours['chunk_rows']:,}): {ratio:.1f}x pyarrow read_csv "
        f"(goal {GOAL_RATIO:g}x: {'met' if ratio <= GOAL_RATIO else 'NOT met'}; ours {ours_s:.1f} s = "
        f"validate {ours['validate_s']:.1f} s + split {ours['split_s']:.1f} s, read_csv {bare_s:.2f} s; "
        f"child {wall:.0f} s with imports); "
        f"peak RSS {peak_mb:.0f} MB (goal {GOAL_RSS_MB:g} MB: "
        f"{'met' if peak_mb <= GOAL_RSS_MB else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
