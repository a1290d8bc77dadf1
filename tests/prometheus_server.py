"""A real Prometheus (Debian's `prometheus` package) for tests: loopback, a free port, its own data.

    url, stop = start_prometheus(config_file, data_dir)
    vector = instant_query(url, 'up{job="churn-api"}', at=time.time())

`.ci/run` installs the package when it is missing (as it does Chromium); a test that cannot find
the binary fails, naming it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.api_server import free_port, start_server_process
from tests.conftest import fail_cannot_run

HOST = "127.0.0.1"


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        fail_cannot_run("no `prometheus` binary on PATH (apt-get install prometheus; .ci/run does it)")
    return str(binary)


def start_prometheus(
    config_file: Path, data_dir: Path, port: int | None = None,
) -> tuple[str, Callable[[], None]]:
    """Start Prometheus on loopback (`port`, or a free one) with `config_file`; return its URL and a stop."""
    port = port or free_port(HOST)
    url = f"http://{HOST}:{port}"
    argv = [prometheus_binary(), f"--config.file={config_file}", f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address={HOST}:{port}"]
    stop = start_server_process("Prometheus", argv, {"PATH": "/usr/bin:/bin"}, f"{url}/-/ready")
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/-/ready").status_code != 200:  # answering is not yet ready
        if time.monotonic() > deadline:
            stop()
            raise RuntimeError("Prometheus did not become ready in 30 s")
        time.sleep(0.2)
    return url, stop


def instant_query(url: str, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
    """Evaluate `expr` at unix time `at` (what a Grafana alert rule's instant query asks for):
    one (labels, value) per series; an empty list is Grafana's No Data."""
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr, "time": f"{at:.3f}"}, timeout=10)
    body: dict[str, Any] = answer.json()
    if body.get("status") != "success":
        raise AssertionError(f"Prometheus refused {expr!r}: {body}")
    return [(series["metric"], float(series["value"][1])) for series in body["data"]["result"]]


def wait_for_series(url: str, expr: str, seconds: float = 30) -> list[tuple[dict[str, str], float]]:
    """Wait until `expr` returns at least one series (a first scrape happened)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = instant_query(url, expr, time.time())
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{expr!r} still empty after {seconds:.0f}s")


def scrape_config(targets: dict[str, str], interval_seconds: int = 1) -> str:
    """A Prometheus configuration scraping each job -> host:port (no authorization)."""
    jobs = "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: [\"{target}\"]\n"
        for job, target in targets.items()
    )
    return (f"global:\n  scrape_interval: {interval_seconds}s\n  scrape_timeout: {interval_seconds}s\n"
            f"scrape_configs:\n{jobs}")
