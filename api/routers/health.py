"""GET /health: the process answers; says whether the database and the model are usable."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.schemas import Health
from db.session import database_reachable

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(request: Request) -> JSONResponse:
    """200 when the database and the model are both usable, 503 naming the part that is down."""
    database = "ok" if database_reachable() else "down"
    model = "ok" if request.app.state.models.current is not None else "down"
    healthy = database == model == "ok"
    body = Health(status="ok" if healthy else "degraded", database=database, model=model)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
