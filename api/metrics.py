"""Prometheus metrics of the HTTP requests: counts and latency per endpoint, and GET /metrics.

The series keep the names and labels of prometheus-fastapi-instrumentator, which produced them
before (the service dashboard and the error-rate alert read them):

- `http_requests_total{method, status, handler}`: status grouped as "2xx", "4xx", "5xx";
- `http_request_duration_seconds{method, handler}`: a histogram with few buckets (0.1, 0.5, 1 s);
- `http_request_duration_highr_seconds`: all endpoints, many buckets, for the latency quantiles.

`handler` is the route's path template ("/predict"), "none" for a path no route serves (so that
a scan of random paths does not create a series per path). Requests to /metrics itself are not
counted. The instrumentator resolved each request's route a second time by trying every route in
turn, built a Response object from the answer's headers and kept two size summaries nobody
read: together about a tenth of a one-record /predict's CPU (bench/bench_api_cpu.py). This
middleware reads the route the router matched (`scope["route"]`, set by FastAPI) and records
three observations.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOW_RESOLUTION_BUCKETS = (0.1, 0.5, 1)
HIGH_RESOLUTION_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4,
                           4.5, 5, 7.5, 10, 30, 60)
METRICS_PATH = "/metrics"
UNMATCHED = "none"  # the handler label of a path no route serves


class RequestMetrics:
    """The counters and histograms of HTTP requests, in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("http_requests", "Total number of requests by method, status and handler.",
                                ["method", "status", "handler"], registry=registry)
        self.latency = Histogram("http_request_duration_seconds",
                                 "Latency with only few buckets by handler (seconds).",
                                 ["method", "handler"], buckets=LOW_RESOLUTION_BUCKETS, registry=registry)
        self.latency_highr = Histogram("http_request_duration_highr_seconds",
                                       "Latency with many buckets but no API specific labels (seconds).",
                                       buckets=HIGH_RESOLUTION_BUCKETS, registry=registry)
        # (method, handler, status class) -> its count and latency series: `labels()` takes a lock
        # and checks its arguments at every call
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def start_at_zero(self, method: str, handler: str) -> None:
        """Create the endpoint's 2xx, 4xx and 5xx series at 0 (see api/main.py)."""
        for status in ("2xx", "4xx", "5xx"):
            self.requests.labels(method=method, status=status, handler=handler)

    def observe(self, method: str, handler: str, status: int, seconds: float) -> None:
        """Count one answered request; `status` the HTTP status code, `seconds` its duration."""
        key = (method, handler, status // 100)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (self.requests.labels(method, f"{status // 100}xx", handler),
                                          self.latency.labels(method, handler))
        series[0].inc()
        series[1].observe(seconds)
        self.latency_highr.observe(seconds)


class RequestMetricsMiddleware:
    """Pure ASGI middleware recording every HTTP request but /metrics in `metrics`.

    A request whose application raised is counted as a 500 (the server error middleware outside
    this one answers it so), then the exception goes on.
    """

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")  # the router's match, written into this same scope
            handler = getattr(route, "path", None) or _mount_path(scope) or UNMATCHED
            self.metrics.observe(scope["method"], handler, status, perf_counter() - start)


def _mount_path(scope: Scope) -> str | None:
    """The mount a request went to (/reports), from the root path the router gave it."""
    root_path: str = scope.get("root_path", "")
    app_root: str = scope.get("app_root_path", root_path)
    mounted = root_path[len(app_root):] if root_path.startswith(app_root) else ""
    return mounted or None
