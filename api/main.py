"""The FastAPI app: routers, the model loaded once in the lifespan, metrics and the reports folder.

    uvicorn api.main:app           (or: python -m api.main, on API_HOST:API_PORT)
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import uvicorn
from fastapi import Depends, FastAPI, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from api.deps import require_json_body, require_token
from api.errors import register_error_handlers
from api.metrics import METRICS_PATH, RequestMetrics, RequestMetricsMiddleware
from api.partitions import PartitionKeeper
from api.reports import ReportFiles
from api.routers import health, model, predictions
from api.routers.predictions import request_schema_components
from api.serving import ModelHolder, ServingMetrics, ServingState
from api.startup import start_serving
from core.settings import ApiServerSettings, DatabaseSettings, RegistrySettings
from db.session import get_engine, new_async_engine

log = logging.getLogger(__name__)
GC_GEN0_THRESHOLD = 50_000  # allocations between young-generation collections (default 700)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ApiServerSettings = app.state.settings
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    _fit_threads_to_pool()
    follower = start_serving(app.state.models, app.state.serving, app.state.registry, settings,
                             ServingMetrics(app.state.metrics_registry, app.state.models, app.state.serving))
    _tune_garbage_collector()
    _start_error_series_at_zero(app)
    keeper = app.state.partition_keeper = PartitionKeeper(settings)
    keeper.start()
    app.state.async_engine = new_async_engine()  # one-record writes, awaited on this event loop
    yield
    keeper.stop()
    if follower is not None:
        follower.stop()
    await app.state.async_engine.dispose()
    get_engine().dispose()


# the endpoints whose server errors the error-rate alert must see from the first one
ERROR_RATE_ENDPOINTS = (("POST", "/predict"), ("GET", "/past-predictions"), ("GET", "/model"),
                        ("GET", "/health"))


def _start_error_series_at_zero(app: FastAPI) -> None:
    """Create each endpoint's `http_requests_total` series (2xx, 4xx, 5xx) at 0 before any request.

    Prometheus's `rate()` counts a counter's increase between samples: the errors a series holds
    when it is first scraped are never counted. Without this, the 5xx series of an outage was
    born with it, and the error-rate alert (grafana/provisioning/alerting/service_rules.yaml) saw
    23 % where 50 % of the requests failed when the first errors came faster than the scrape, and
    a 2xx series born with its first 40 requests counted none of them.
    """
    metrics: RequestMetrics = app.state.request_metrics
    for method, handler in ERROR_RATE_ENDPOINTS:
        metrics.start_at_zero(method, handler)  # the rule's numerator and its denominator


def _fit_threads_to_pool() -> None:
    """As many request threads as pooled connections (DATABASE_POOL_SIZE).

    Handlers and background tasks run in AnyIO's worker threads (40 by default); with more threads
    than connections, a burst left threads waiting on the pool until its timeout and answered 503
    "database unavailable" (64 clients against 40 threads and 20 connections). With one thread per
    connection a thread never waits for one: extra requests queue on the event loop instead.
    """
    anyio.to_thread.current_default_thread_limiter().total_tokens = DatabaseSettings().database_pool_size


def _tune_garbage_collector() -> None:
    """Keep the cyclic GC off the long-lived objects and away from big requests.

    A 10,000-record request allocates some 300,000 containers; with the default thresholds the
    collector ran dozens of times per request, each full pass walking every object of the loaded
    libraries (pandas, scikit-learn, FastAPI). Freezing what exists after startup and collecting
    less often halved the time of such a request (bench/bench_api_batch.py).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


def _add_metrics(app: FastAPI) -> None:
    """Prometheus: request counts and latency per endpoint, predictions per source and label.

    A registry per app, so that several apps in one process (tests) do not collide.
    """
    registry = app.state.metrics_registry = CollectorRegistry()
    app.state.predictions_counter = Counter(
        "churn_predictions", "Stored predictions by source and predicted label (1 = churn)",
        ["source", "label"], registry=registry,
    )
    app.state.model_call_records = Histogram(
        "churn_model_call_records", "Records scored per model call (one call per /predict request)",
        buckets=(1, 2, 4, 8, 16, 32, 64, 256, 1024, 10_000), registry=registry,
    )
    request_metrics = app.state.request_metrics = RequestMetrics(registry)
    app.add_middleware(RequestMetricsMiddleware, metrics=request_metrics)

    @app.get(METRICS_PATH, tags=["monitoring"], dependencies=[Depends(require_token)],
             response_class=PlainTextResponse)
    def metrics() -> Response:
        """The metrics in Prometheus's text format (a token is needed when the API has one)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _document_request_body(app: FastAPI, max_records: int) -> None:
    """/predict validates its raw body itself: add that body's schema to the OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # FastAPI's document, cached by FastAPI as app.openapi_schema
        schema.setdefault("components", {}).setdefault("schemas", {}).update(
            request_schema_components(max_records)
        )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: ApiServerSettings | None = None, registry: RegistrySettings | None = None,
) -> FastAPI:
    settings = settings or ApiServerSettings()
    app = FastAPI(
        title="Churn prediction API",
        summary="Scores customer records for churn and serves the stored predictions.",
        version="1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry or RegistrySettings()
    app.state.models = ModelHolder()  # filled in the lifespan, swapped when the registry moves
    app.state.serving = ServingState()  # what the follower saw of the registry, and refusals
    app.state.api_token = settings.token_value()  # read once; an unreadable API_TOKEN_FILE fails here
    protected = [Depends(require_token), Depends(require_json_body)]
    app.include_router(health.router)
    app.include_router(model.router, dependencies=protected)
    app.include_router(predictions.router, dependencies=protected)
    _document_request_body(app, settings.max_records_per_request)
    register_error_handlers(app)
    _add_metrics(app)
    # Data Docs reports, linked from alerts and opened in a browser (which sends no token)
    app.mount("/reports", ReportFiles(directory=settings.reports_dir, html=True, check_dir=False),
              name="reports")
    return app


app = create_app()


def main() -> None:
    settings = ApiServerSettings()
    uvicorn.run("api.main:app", host=settings.api_host, port=settings.api_port, workers=settings.api_workers)


if __name__ == "__main__":
    main()
