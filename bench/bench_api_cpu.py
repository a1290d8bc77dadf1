"""The API process's own CPU per one-record POST /predict, vs its trivial endpoint's.

    python -m bench.bench_api_cpu

`bench_api_single` measures what a client waits (wall clock): on the shared two-core machine its
ratio moves by 2x from one run to the next, because each request's wake-ups (the event loop, a
worker thread, the database's answer) wait for a core. The CPU the API process spends per request
(`psutil`'s user + system time of the server process, over ROUNDS alternated rounds of REQUESTS
sequential requests on one keep-alive connection) moves far less, so a lever worth a few tenths
of a millisecond shows here first. Baseline in the same run: the same server answering an unknown
path (404 from the router: HTTP, ASGI and middleware, no handler).
"""

from __future__ import annotations

import json
import statistics
from http.client import HTTPConnection
from urllib.parse import urlsplit

import psutil

from bench import _common

REQUESTS = 600
ROUNDS = 4
WARM_UP = 200
TRIVIAL_PATH = "/bench-trivial-endpoint"


def server_process(api: str) -> psutil.Process:
    """The process listening on the API's port."""
    port = urlsplit(api).port
    return psutil.Process(next(c.pid for c in psutil.net_connections("tcp")
                                if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
                                and c.pid is not None))


def cpu_per_request(process: psutil.Process, http: HTTPConnection, path: str, bodies: list[bytes]) -> float:
    """Seconds of the server's CPU (user + system) per request, over `bodies` sent to `path`."""
    before = process.cpu_times()
    for body in bodies:
        http.request("POST", path, body=body, headers={"content-type": "application/json"})
        http.getresponse().read()
    after = process.cpu_times()
    return (after.user + after.system - before.user - before.system) / len(bodies)


def main() -> None:
    records = _common.sample_records(WARM_UP + REQUESTS, seed=1)
    bodies = [json.dumps({"source": "webapp", "records": [record]}).encode() for record in records]
    with _common.scratch_database() as url:
        api, stop = _common.start_api_server(url, env={"API_TOKEN": ""})
        try:
            process = server_process(api)
            address = urlsplit(api)
            http = HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=60)
            cpu_per_request(process, http, "/predict", bodies[:WARM_UP])
            predict, trivial = [], []
            for _ in range(ROUNDS):
                predict.append(cpu_per_request(process, http, "/predict", bodies[WARM_UP:]))
                trivial.append(cpu_per_request(process, http, TRIVIAL_PATH, bodies[WARM_UP:]))
            http.close()
        finally:
            stop()
    api_cpu, floor_cpu = statistics.median(predict), statistics.median(trivial)
    print(f"api cpu, one-record POST /predict: {api_cpu * 1000:.2f} ms of the API process's CPU per request "
          f"= {api_cpu / floor_cpu:.1f}x its trivial endpoint's {floor_cpu * 1000:.2f} ms "
          f"(+{(api_cpu - floor_cpu) * 1000:.2f} ms for the handler's path; median of {ROUNDS} rounds "
          f"of {REQUESTS}, range {min(predict) * 1000:.2f}-{max(predict) * 1000:.2f} ms)")


if __name__ == "__main__":
    main()
