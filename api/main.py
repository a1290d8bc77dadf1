"""The FastAPI app: routers, the model loaded once in the lifespan, metrics and the reports folder.

    uvicorn api.main:app           (or: python -m api.main, on API_HOST:API_PORT)
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_fastapi_instrumentator import Instrumentator

from api.deps import require_json_body, require_token
from api.errors import register_error_handlers
from api.reports import ReportFiles
from api.routers import health, model, predictions
from api.routers.predictions import request_schema_components
from api.serving import ModelHolder, RegistryFollower, build_served
from core.settings import ApiServerSettings, RegistrySettings
from db.session import get_engine
from model.predictor import ModelNotTrainedError, Predictor

log = logging.getLogger(__name__)
GC_GEN0_THRESHOLD = 50_000  # allocations between young-generation collections (default 700)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ApiServerSettings = app.state.settings
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    holder: ModelHolder = app.state.models
    follower = _load_models(holder, app.state.registry, settings)
    _tune_garbage_collector()
    if follower is not None:
        follower.start()
    yield
    if follower is not None:
        follower.stop()
    get_engine().dispose()


def _load_models(
    holder: ModelHolder, registry: RegistrySettings, settings: ApiServerSettings,
) -> RegistryFollower | None:
    """The registry's champion when there is a registry that answers, else the local artifacts.

    Returns the follower that keeps the models in step with the registry's aliases (None when
    MLFLOW_TRACKING_URI is unset).
    """
    follower = RegistryFollower(holder, registry) if registry.enabled else None
    if follower is not None:
        try:
            follower.refresh()
        except Exception:  # the registry is another service; the local artifacts still serve
            log.exception("the model registry did not answer at start: serving %s until it does",
                          settings.model_artifacts_dir)
    if holder.current is None:
        try:
            # one ONNX Runtime session for the process, shared by every request thread
            holder.swap(build_served(Predictor(settings.model_artifacts_dir)))
        except ModelNotTrainedError as error:
            # keep serving /health (which reports the model down) rather than refusing to start
            log.error("%s", error)
    if holder.current is not None:
        log.info("model %s loaded", holder.current.champion.version)
    return follower


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
    registry = CollectorRegistry()
    app.state.predictions_counter = Counter(
        "churn_predictions", "Stored predictions by source and predicted label (1 = churn)",
        ["source", "label"], registry=registry,
    )
    app.state.model_call_records = Histogram(
        "churn_model_call_records", "Records scored per model call (one call per /predict request)",
        buckets=(1, 2, 4, 8, 16, 32, 64, 256, 1024, 10_000), registry=registry,
    )
    Instrumentator(registry=registry, excluded_handlers=["/metrics"]).instrument(app).expose(
        app, endpoint="/metrics", tags=["monitoring"], dependencies=[Depends(require_token)],
    )


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
    uvicorn.run("api.main:app", host=settings.api_host, port=settings.api_port)


if __name__ == "__main__":
    main()
