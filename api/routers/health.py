"""Liveness, readiness, and what is served: GET /health/live, /health/ready and /health.

- `/health/live`: 200 whenever the process answers (a container supervisor restarts it otherwise).
- `/health/ready`: 200 when the database answers AND the served champion scores the contract's
  canary records to finite probabilities; 503 naming the part that is down.
- `/health`: readiness (same status code, so compose healthchecks and `make run` keep working)
  plus `serving`: the served versions, the registry's champion and challenger, whether they agree,
  whether the registry answered, its last successful poll, and the versions admission refused.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.schemas import Health, Liveness, Readiness
from api.serving import ServedModels, serving_report
from db.session import database_reachable
from model.contract import canary_records

router = APIRouter(tags=["health"])
CANARY = canary_records()


def _model_scores(models: ServedModels | None) -> bool:
    """True when the served champion scores the canary records to probabilities (about 1 ms)."""
    if models is None:
        return False
    try:
        probabilities = models.champion.predict_proba(CANARY)
    except Exception:  # a model that cannot score is exactly what readiness reports
        return False
    return all(math.isfinite(p) and 0 <= p <= 1 for p in probabilities.tolist())


def _readiness(request: Request) -> tuple[dict[str, Any], int]:
    database = "ok" if database_reachable() else "down"
    model = "ok" if _model_scores(request.app.state.models.current) else "down"
    healthy = database == model == "ok"
    return {"status": "ok" if healthy else "degraded", "database": database, "model": model}, \
        200 if healthy else 503


@router.get("/health/live", response_model=Liveness)
def live() -> dict[str, str]:
    """200 while the process answers requests, whatever the state of the database or the model."""
    return {"status": "ok"}


@router.get("/health/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(request: Request) -> JSONResponse:
    """200 when the database answers and the served model scores a canary; 503 naming what is down."""
    body, status = _readiness(request)
    return JSONResponse(body, status_code=status)


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(request: Request) -> JSONResponse:
    """Readiness (200 or 503) with what is served and what the registry says (`serving`)."""
    body, status = _readiness(request)
    body["serving"] = serving_report(request.app.state.models.current, request.app.state.serving)
    return JSONResponse(Health.model_validate(body).model_dump(mode="json"), status_code=status)
