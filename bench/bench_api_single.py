"""One-record POST /predict, from one client and from 8 concurrent clients, vs the floor of any request.

    python -m bench.bench_api_single

The floor, measured in the same run against the same server and database: an HTTP round trip
to a trivial endpoint of the same server (an unknown path, answered 404 by the router: the whole
HTTP and ASGI path, no handler work) plus one `INSERT ... RETURNING id` of a scored row (reason
columns included) and its commit, on a connection of its own: BEGIN, the INSERT and COMMIT, three
round trips to the database. Everything above it is parsing, validation, scoring and answering.
Since this round the API stores one record with one autocommitted statement (one round trip), so
a stricter floor is printed beside it: the same with the INSERT autocommitted. The goals are
judged against the first, the floor they were set with; the second says how much of the margin
the API's single round trip buys.

Figures (p50 over every request; each client has its own keep-alive connection, standard-library
HTTP client so that a heavier client's CPU is not counted as the service's; the API and the floor
are measured in six short alternated rounds, so that a shared machine's load hits both alike):
- one client: POST /predict p50 vs the floor's p50. Goal <= 1.5x.
- 8 concurrent clients: p50 vs the floor's p50 at the same concurrency. Goal <= 2x.
- reason codes: their added cost per request (scoring them, the INSERT's reason columns, encoding
  them in the answer; median of differences measured back to back) as a share of the one-client
  p50. Goal <= 10 %.
- reference: the old scikit-learn one-row call, bare, against the floor.
"""

from __future__ import annotations

import json
import statistics
import threading
from collections.abc import Callable
from functools import partial
from http.client import HTTPConnection
from typing import Any
from urllib.parse import urlsplit

import psycopg

from bench import _common
from bench.bench_api_batch import encode_reasons
from db.models import REASON_COLUMNS
from model.contract import FEATURE_NAMES, IDENTIFIER
from model.predictor import Predictor

CLIENTS = 8
REQUESTS_PER_CLIENT = 60
LONE_REQUESTS = 240
ROUNDS = 6
REASON_REPEATS = 300
TRIVIAL_PATH = "/bench-trivial-endpoint"  # no such route: the router answers 404 at once
BASE_COLUMNS = ["source", "model_version", "predicted_label", "churn_probability", IDENTIFIER, *FEATURE_NAMES]


def insert_statement(columns: list[str]) -> str:
    return (f"INSERT INTO bench_insert ({', '.join(columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) RETURNING id")


def scored_row(predictor: Predictor, record: dict[str, Any], reasons: bool = True) -> tuple[Any, ...]:
    """The stored columns of one scored record: BASE_COLUMNS, then (with reasons) REASON_COLUMNS."""
    scores = predictor.score([record], reasons=reasons)
    row = ("webapp", predictor.version, int(scores.labels[0]), float(scores.probabilities[0]),
           record[IDENTIFIER], *[record[name] for name in FEATURE_NAMES])
    if scores.reasons is None:
        return row
    names = scores.reasons.features[0].tolist()
    top = [value for index, contribution in zip(names, scores.reasons.contributions[0].tolist(), strict=True)
           for value in (FEATURE_NAMES[index], contribution)]
    return (*row, *top, float(scores.reasons.rest[0]))


def in_threads(
    clients: int, shares: list[list[Any]], work: Callable[[list[Any]], list[float]],
) -> list[float]:
    """Run `work(share)` in `clients` threads started together; all their latencies."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client(share: list[Any]) -> None:
        mine = work(share)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(shares[i],)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def floor_latencies(
    api: str, url: str, rows: list[tuple[Any, ...]], start: threading.Barrier, autocommit: bool = False,
) -> list[float]:
    """Per row: a round trip to the trivial endpoint, then INSERT ... RETURNING and COMMIT (with
    `autocommit`, the INSERT alone: one statement, its own transaction)."""
    address = urlsplit(api)
    http = HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=60)
    statement = insert_statement([*BASE_COLUMNS, *REASON_COLUMNS])
    latencies = []
    with psycopg.connect(url, autocommit=autocommit) as conn:
        _request(http, "GET", TRIVIAL_PATH, b"", expect=404)  # connections open before the clock
        start.wait()
        for row in rows:
            def floor(row: tuple[Any, ...] = row) -> None:
                _request(http, "GET", TRIVIAL_PATH, b"", expect=404)
                conn.execute(statement, row).fetchone()
                if not autocommit:
                    conn.commit()
            latencies.append(_common.timed(floor))
    http.close()
    return latencies


def api_latencies(api: str, bodies: list[bytes], start: threading.Barrier) -> list[float]:
    """One client's POST /predict requests, one after the other, on one keep-alive connection."""
    address = urlsplit(api)
    http = HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=60)
    _request(http, "GET", TRIVIAL_PATH, b"", expect=404)  # open the connection before the clock starts
    start.wait()
    latencies = [_common.timed(partial(_request, http, "POST", "/predict", body)) for body in bodies]
    http.close()
    return latencies


def _request(http: HTTPConnection, method: str, path: str, body: bytes, expect: int = 200) -> bytes:
    http.request(method, path, body=body, headers={"content-type": "application/json"})
    response = http.getresponse()
    content = response.read()
    if response.status != expect:
        raise RuntimeError(f"{method} {path}: {response.status} {content[:300]!r}")
    return content


def reason_cost_seconds(predictor: Predictor, url: str, records: list[dict[str, Any]]) -> tuple[float, float]:
    """One record: the median added cost of reason codes (scoring them, the INSERT's extra columns,
    encoding them in the answer), each repeat measured with and without back to back; and the
    median cost of scoring + INSERT ... RETURNING + commit without them."""
    statements = {True: insert_statement([*BASE_COLUMNS, *REASON_COLUMNS]),
                  False: insert_statement(BASE_COLUMNS)}
    added, without = [], []
    with psycopg.connect(url) as conn:
        def one(record: dict[str, Any], reasons: bool) -> None:
            row = scored_row(predictor, record, reasons)
            conn.execute(statements[reasons], row).fetchone()
            conn.commit()
            if reasons:
                encode_reasons([record], [list(row[len(BASE_COLUMNS):])])

        for i in range(REASON_REPEATS):
            record = records[i % len(records)]
            with_time = _common.timed(partial(one, record, True))
            without.append(_common.timed(partial(one, record, False)))
            added.append(with_time - without[-1])
    return statistics.median(added), statistics.median(without)


def main() -> None:
    predictor = Predictor()
    records = _common.sample_records(CLIENTS * REQUESTS_PER_CLIENT, seed=1)
    bodies = [json.dumps({"source": "webapp", "records": [record]}).encode() for record in records]
    rows = [scored_row(predictor, record) for record in records]
    with _common.scratch_database() as url:
        libpq = _common.libpq_url(url)
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_insert (LIKE predictions INCLUDING ALL)")
        api, stop = _common.start_api_server(url, env={"API_TOKEN": ""})
        try:
            in_threads(CLIENTS, [bodies[i:CLIENTS * 5:CLIENTS] for i in range(CLIENTS)],  # warm-up
                       partial(api_latencies, api, start=threading.Barrier(CLIENTS)))
            lone_api, lone_floor, busy_api, busy_floor = [], [], [], []
            lone_strict, busy_strict = [], []
            for turn in range(ROUNDS):  # short rounds alternated: the machine's load hits all alike
                lone = slice(turn * LONE_REQUESTS // ROUNDS, (turn + 1) * LONE_REQUESTS // ROUNDS)
                lone_api += api_latencies(api, bodies[lone], threading.Barrier(1))
                lone_floor += floor_latencies(api, libpq, rows[lone], threading.Barrier(1))
                lone_strict += floor_latencies(api, libpq, rows[lone], threading.Barrier(1), autocommit=True)
                busy = slice(turn * len(bodies) // ROUNDS, (turn + 1) * len(bodies) // ROUNDS)
                busy_api += in_threads(CLIENTS, [bodies[busy][i::CLIENTS] for i in range(CLIENTS)],
                                       partial(api_latencies, api, start=threading.Barrier(CLIENTS)))
                busy_floor += in_threads(CLIENTS, [rows[busy][i::CLIENTS] for i in range(CLIENTS)],
                                         partial(floor_latencies, api, libpq,
                                                 start=threading.Barrier(CLIENTS)))
                busy_strict += in_threads(CLIENTS, [rows[busy][i::CLIENTS] for i in range(CLIENTS)],
                                          partial(floor_latencies, api, libpq, autocommit=True,
                                                  start=threading.Barrier(CLIENTS)))
            added, without_reasons = reason_cost_seconds(predictor, libpq, records)
            sklearn = _common.median_seconds(lambda: predictor.sklearn_predict_proba(records[:1]), 100)
        finally:
            stop()
    p50 = _common.percentile
    api1, floor1, api8, floor8 = (p50(x, 0.5) for x in (lone_api, lone_floor, busy_api, busy_floor))
    print(f"api single, 1 client: p50 {api1 / floor1:.2f}x the floor (POST /predict {api1 * 1000:.2f} ms "
          f"vs trivial round trip + INSERT RETURNING + commit {floor1 * 1000:.2f} ms, "
          f"{len(lone_api)} requests; goal <= 1.5x)")
    print(f"api single, {CLIENTS} concurrent clients: p50 {api8 / floor8:.2f}x the floor at the same "
          f"concurrency (api p50 {api8 * 1000:.2f} ms, p99 {p50(busy_api, 0.99) * 1000:.1f} ms; floor p50 "
          f"{floor8 * 1000:.2f} ms, p99 {p50(busy_floor, 0.99) * 1000:.1f} ms; {len(busy_api)} requests; "
          f"goal <= 2x)")
    strict1, strict8 = p50(lone_strict, 0.5), p50(busy_strict, 0.5)
    print(f"api single, against the stricter floor (the INSERT autocommitted, one round trip, as the API "
          f"now stores one record): 1 client {api1 / strict1:.2f}x ({strict1 * 1000:.2f} ms), "
          f"{CLIENTS} clients {api8 / strict8:.2f}x ({strict8 * 1000:.2f} ms); for information, the goals "
          f"are judged against the floor above")
    print(f"api single, reason codes: {100 * added / api1:+.1f} % of a one-client request "
          f"({added * 1000:+.3f} ms: scoring, storing and encoding them, median of paired differences; "
          f"score + INSERT + commit {without_reasons * 1000:.3f} ms without them; goal <= 10 %)")
    print(f"api single, reference: the old scikit-learn one-row call alone is {sklearn / floor1:.2f}x "
          f"the floor ({sklearn * 1000:.2f} ms, against the ONNX predictor's "
          f"{_common.median_seconds(lambda: predictor.score(records[:1]), 300) * 1000:.3f} ms)")


if __name__ == "__main__":
    main()
