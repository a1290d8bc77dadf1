"""The scheduled prediction job on a large good_data file vs the bare ONNX scoring + COPY of its rows.

    python -m bench.bench_prediction_job                   # 1,000,000 rows (what `make bench` runs)
    python -m bench.bench_prediction_job --rows 100000     # a quicker look

The file: good rows (the dataset cycled, unique customer ids) as the split writes them, in a temp
folder removed at the end. Ours: `jobs.prediction.predict_file`, the whole job on one file: the
one reader streaming the file, the typed reading of each chunk, SCHEDULED_PREDICT_CHUNK_SIZE rows
per `POST /predict?echo=false` to the real API (its own process, a scratch database), the ledger.
Floor, in the same run on the same rows: for each chunk of the same size, ONNX scoring with
reason codes (model/predictor.py) and the API's binary COPY into a table shaped like
`predictions`, committed, on an open connection (bench/bench_api_batch.py's floor), measured
before the job and again after it (the mean: the load of a shared machine drifts over the
minutes the job takes); the records are built beforehand, outside the timing. Goal (issue 25):
within 3x.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psycopg

from bench import _common
from bench.bench_api_batch import bare_score_and_copy
from core.api_client import ChurnApiClient
from core.settings import ApiServerSettings, PredictionJobSettings
from model.contract import FEATURE_NAMES, IDENTIFIER, TARGET
from model.data import DATASET_PATH
from model.predictor import Predictor
from tests.api_server import free_port, start_server_process

GOAL_RATIO = 3.0


def write_good_file(path: Path, rows: int) -> None:
    """`rows` valid customers with unique ids, as good_data holds them (text as written)."""
    source = pd.read_csv(DATASET_PATH, dtype=str)
    source = source[source["total_charges"].notna() | source["tenure"].eq("0")]
    written, copy = 0, 0
    with path.open("w", newline="") as handle:
        while written < rows:
            block = source.head(rows - written).copy()
            block[IDENTIFIER] = [f"P{copy:05d}-{i:05d}" for i in range(len(block))]
            handle.write(block.to_csv(index=False, header=not written))
            written += len(block)
            copy += 1


def floor_seconds(path: Path, chunk: int, predictor: Predictor, conn: psycopg.Connection) -> float:
    """Bare scoring + COPY of every chunk of the file, summed (records built outside the timing)."""
    total = 0.0
    for frame in pd.read_csv(path, chunksize=chunk):
        frame = frame.drop(columns=[TARGET], errors="ignore")
        records = [
            {key: (None if value != value else value) for key, value in row.items()}
            for row in frame[[IDENTIFIER, *FEATURE_NAMES]].to_dict("records")
        ]
        started = time.perf_counter()
        bare_score_and_copy(predictor, records, conn)
        total += time.perf_counter() - started
    return total


def start_api(url: str) -> tuple[str, Callable[[], None]]:
    """The real API on the scratch database, given minutes to start on a loaded machine."""
    host = ApiServerSettings(_env_file=None).api_host
    port = free_port(host)
    environ = {**os.environ, "DATABASE_URL": url, "API_HOST": host, "API_PORT": str(port), "API_TOKEN": ""}
    base_url = f"http://{host}:{port}"
    stop = start_server_process(
        "the API", [sys.executable, "-m", "api.main"], environ, f"{base_url}/health", timeout=600,
    )
    return base_url, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    from jobs.prediction import predict_file

    chunk = PredictionJobSettings().scheduled_predict_chunk_size
    predictor = Predictor()
    with tempfile.TemporaryDirectory(prefix="bench-prediction-") as folder, \
            _common.scratch_database() as url:
        work = Path(folder)
        good = work / "good.csv"
        write_good_file(good, args.rows)
        libpq = _common.libpq_url(url)
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_copy (LIKE predictions INCLUDING ALL)")
        api, stop = start_api(url)
        try:
            with psycopg.connect(libpq) as conn:
                bare_score_and_copy(predictor, _common.sample_records(100), conn)  # warm-up
                floor_before = floor_seconds(good, chunk, predictor, conn)
                client = ChurnApiClient(api, None, timeout_seconds=600)
                started = time.perf_counter()
                predicted = predict_file(good, client, chunk, bad_data_dir=work / "bad")
                ours = time.perf_counter() - started
                client.close()
                # the floor again after the job: the machine's load drifts over minutes
                conn.execute("TRUNCATE bench_copy")
                conn.commit()
                floor_after = floor_seconds(good, chunk, predictor, conn)
        finally:
            stop()
    floor = (floor_before + floor_after) / 2
    ratio = ours / floor
    print(
        f"prediction job {args.rows:,} rows ({predicted:,} predicted, {chunk:,} per request): "
        f"{ratio:.2f}x the bare ONNX scoring + COPY (goal {GOAL_RATIO:g}x: "
        f"{'met' if ratio <= GOAL_RATIO else 'NOT met'}; job {ours:.1f} s, floor {floor:.1f} s = "
        f"the mean of {floor_before:.1f} s before the job and {floor_after:.1f} s after)"
    )


if __name__ == "__main__":
    main()
