"""A burst of concurrent clients against the real API over HTTP: every request is answered, none
refused for lack of a database connection (issue 22: pool 20 behind 40 worker threads gave 503s)."""

from __future__ import annotations

import threading
from collections import Counter

import httpx

from tests.api.conftest import stored_count
from tests.factories import customer_records

CLIENTS = 64
ROUNDS = 6
BATCH = 2000


def test_a_burst_of_64_clients_gets_no_503(api_url: str, clean_db: str) -> None:
    records = customer_records(CLIENTS * ROUNDS)
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(index: int) -> None:
        with httpx.Client(base_url=api_url, timeout=120) as http:
            http.get("/health")  # connected before the burst
            start.wait()
            for turn in range(ROUNDS):
                # every fourth client sends batches, which hold their connection longer
                batch = [records[turn * CLIENTS + index]] * (BATCH if index % 4 == 0 else 1)
                response = http.post("/predict", json={"source": "webapp", "records": batch})
                with lock:
                    statuses[response.status_code] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    print(f"{CLIENTS} clients x {ROUNDS} requests: statuses {dict(statuses)}")
    assert statuses == {200: CLIENTS * ROUNDS}
    assert stored_count() == ROUNDS * (CLIENTS // 4 * BATCH + CLIENTS - CLIENTS // 4)
