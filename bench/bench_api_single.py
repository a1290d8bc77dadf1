"""Latency of one-record POST /predict requests from 8 concurrent clients vs the bare work.

    python bench/bench_api_single.py

Baseline, measured in the same run on the same records: the bare one-row predictor call plus
one INSERT of that row (committed). The API figures are p50 and p99 over all requests of 8
clients (threads, each with its own keep-alive connection, standard-library HTTP client) sending
records one by one.
Goal: p50 at most 2x the baseline's p50.

The ratio is given against the bare work done by 8 threads at once (same concurrency, the
figure the goal is read against) and against a lone bare call (no concurrency at all). On a
2-core machine the second one mostly measures queueing: 8 requests in flight on one process.
"""

from __future__ import annotations

import json
import threading
from functools import partial
from http.client import HTTPConnection
from urllib.parse import urlsplit

import psycopg

from bench import _common
from model.contract import FEATURE_NAMES, IDENTIFIER
from model.predictor import Predictor

CLIENTS = 8
REQUESTS_PER_CLIENT = 60
BASELINE_CALLS = 200
COLUMNS = ["source", "model_version", "predicted_label", "churn_probability", IDENTIFIER, *FEATURE_NAMES]
INSERT = (f"INSERT INTO bench_insert ({', '.join(COLUMNS)}) "
          f"VALUES ({', '.join(['%s'] * len(COLUMNS))})")


def concurrent_bare_latencies(predictor: Predictor, records: list[dict], url: str) -> list[float]:
    """bare_latencies from CLIENTS threads at once, each on its own connection."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client(share: list[dict]) -> None:
        mine = bare_latencies(predictor, share, url)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(records[i::CLIENTS],)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def bare_latencies(predictor: Predictor, records: list[dict], url: str) -> list[float]:
    """One-row predictor call plus one committed INSERT, per record."""
    latencies = []
    with psycopg.connect(url, autocommit=True) as conn:
        for record in records:
            def score_and_insert(record: dict = record) -> None:
                [prediction] = predictor.predict([record])
                conn.execute(INSERT, ("webapp", predictor.version, prediction.label, prediction.probability,
                                      record[IDENTIFIER], *[record[name] for name in FEATURE_NAMES]))
            latencies.append(_common.timed(score_and_insert))
    return latencies


def api_latencies(api: str, bodies: list[bytes]) -> list[float]:
    """Each of CLIENTS threads sends its share of the bodies one after the other."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    address = urlsplit(api)

    def client(share: list[bytes]) -> None:
        # the standard library's client: on a 2-core machine shared by the clients and the
        # server, a heavier client's own CPU time would be counted as the service's latency
        mine: list[float] = []
        http = HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=60)
        _request(http, "GET", "/health", b"")  # open the connection before the clock starts
        start.wait()
        for body in share:
            mine.append(_common.timed(partial(_request, http, "POST", "/predict", body)))
        http.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(bodies[i::CLIENTS],)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def _request(http: HTTPConnection, method: str, path: str, body: bytes) -> bytes:
    http.request(method, path, body=body, headers={"content-type": "application/json"})
    response = http.getresponse()
    content = response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {content[:300]!r}")
    return content


def main() -> None:
    predictor = Predictor()
    records = _common.sample_records(CLIENTS * REQUESTS_PER_CLIENT, seed=1)
    bodies = [json.dumps({"source": "webapp", "records": [record]}).encode() for record in records]
    with _common.scratch_database() as url:
        libpq = _common.libpq_url(url)
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_insert (LIKE predictions INCLUDING ALL)")
        api, stop = _common.start_api_server(url, env={"API_TOKEN": ""})
        try:
            api_latencies(api, bodies[:CLIENTS * 5])  # warm-up
            bare_latencies(predictor, records[:20], libpq)
            lone = bare_latencies(predictor, records[:BASELINE_CALLS], libpq)
            ours = api_latencies(api, bodies)
            bare = concurrent_bare_latencies(predictor, records, libpq)
        finally:
            stop()
    p50, p99 = _common.percentile(ours, 0.50), _common.percentile(ours, 0.99)
    bare50, bare99 = _common.percentile(bare, 0.50), _common.percentile(bare, 0.99)
    lone50 = _common.percentile(lone, 0.50)
    print(
        f"api single, {CLIENTS} concurrent clients: p50 {p50 / bare50:.2f}x the bare predictor + INSERT "
        f"at the same concurrency, {p50 / lone50:.2f}x a lone bare call "
        f"(api p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms over {len(ours)} requests; "
        f"bare p50 {bare50 * 1000:.1f} ms, p99 {bare99 * 1000:.1f} ms; lone bare p50 {lone50 * 1000:.1f} ms; "
        f"goal p50 <= 2x)"
    )


if __name__ == "__main__":
    main()
