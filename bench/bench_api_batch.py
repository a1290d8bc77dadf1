"""10,000 records through POST /predict end to end vs the bare work on the same rows.

    python bench/bench_api_batch.py

Baseline, measured in the same run on the same rows: the bare predictor call plus a COPY of the
rows (features, label, probability) into a scratch table shaped like `predictions`, committed.
The API figure is one HTTP request (body encoded once beforehand) until the whole response is
received: parsing, validation, scoring, the transaction, the response. Goal: at most 2x.
"""

from __future__ import annotations

import json

import httpx
import psycopg

from bench import _common
from model.contract import FEATURE_NAMES, IDENTIFIER
from model.predictor import Predictor

ROWS = 10_000
REPEATS = 9
COLUMNS = ["source", "model_version", "predicted_label", "churn_probability", IDENTIFIER, *FEATURE_NAMES]


def bare_predict_and_copy(predictor: Predictor, records: list[dict], conn: psycopg.Connection) -> None:
    """On an open connection, like the API's pooled ones: connecting is not part of the work."""
    probabilities = predictor.predict_proba(records)
    labels = (probabilities >= predictor.threshold).astype(int).tolist()
    with conn.cursor() as cursor, cursor.copy(f"COPY bench_copy ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for record, label, probability in zip(records, labels, probabilities.tolist(), strict=True):
            copy.write_row(("scheduled", predictor.version, label, probability, record[IDENTIFIER],
                            *[record[name] for name in FEATURE_NAMES]))
    conn.commit()


def main() -> None:
    predictor = Predictor()
    records = _common.sample_records(ROWS)
    body = json.dumps({"source": "scheduled", "records": records}).encode()
    with _common.scratch_database() as url:
        libpq = _common.libpq_url(url)
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_copy (LIKE predictions INCLUDING ALL)")
        api, stop = _common.start_api_server(url, env={"API_TOKEN": ""})
        try:
            with httpx.Client(base_url=api, timeout=120) as client, psycopg.connect(libpq) as conn:
                def through_api() -> None:
                    response = client.post("/predict", content=body,
                                           headers={"content-type": "application/json"})
                    response.raise_for_status()

                through_api()  # warm-up: first connections, lazy imports
                bare_predict_and_copy(predictor, records, conn)
                api_times, bare_times = [], []
                for _ in range(REPEATS):  # interleaved, so both see the same machine load
                    api_times.append(_common.timed(through_api))
                    bare_times.append(_common.timed(lambda: bare_predict_and_copy(predictor, records, conn)))
        finally:
            stop()
    ours, bare = sorted(api_times)[REPEATS // 2], sorted(bare_times)[REPEATS // 2]
    print(
        f"api batch {ROWS:,} records: {ours / bare:.2f}x the bare predictor + COPY "
        f"(api {ours * 1000:.0f} ms, bare {bare * 1000:.0f} ms, median of {REPEATS}; goal <= 2x)"
    )


if __name__ == "__main__":
    main()
