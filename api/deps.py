"""Dependencies: the database session, the loaded model, the settings and the token check."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.serving import ServedModels
from core.settings import ApiServerSettings
from db.session import new_session

bearer = HTTPBearer(auto_error=False, description="Needed when the API runs with API_TOKEN set")


def get_settings(request: Request) -> ApiServerSettings:
    return request.app.state.settings


async def get_served_models(request: Request) -> ServedModels:
    """The models this request is served by: one snapshot, read once (see api/serving.py)."""
    return served_models(request)


def served_models(request: Request) -> ServedModels:
    """get_served_models as a plain function; raises HTTPException 503 when no model is loaded."""
    models: ServedModels | None = request.app.state.models.current
    if models is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the model is not loaded: run `python -m model.train`, then restart the API",
        )
    return models


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Open when no token is configured; otherwise `Authorization: Bearer <token>` is required.

    The token (API_TOKEN, or the content of API_TOKEN_FILE) is read once, by create_app.
    """
    check_token(request, credentials.credentials if credentials else "")


def check_token(request: Request, given: str) -> None:
    """require_token as a plain function: `given` is the bearer credential sent ("" when none).

    Raises HTTPException 401 when a token is configured and `given` is not it."""
    expected: str | None = request.app.state.api_token
    if expected is None:
        return
    # constant-time comparison: the answer time says nothing about how much of the token matched
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong API token: send `Authorization: Bearer <API_TOKEN>`",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def request_session() -> AsyncIterator[Session]:
    """A database session per request, opened and closed on the event loop unless that needs I/O.

    Creating a Session checks no connection out (that happens on first use, in the worker thread
    running the handler), and closing one whose transaction was committed or rolled back returns
    nothing to the database either. Only a session still inside a transaction (a read-only
    handler, or one that raised mid-way) is closed in the thread pool, where its rollback may wait
    on the database without blocking the event loop. A plain generator dependency cost two extra
    thread-pool hops per request, each a wait for a thread on a loaded machine (bench_api_single).
    The trivial dependencies below are `async def` for the same reason: no I/O, no hop.
    """
    session = new_session()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


JSON_MEDIA_TYPES = ("application/json",)


async def require_json_body(request: Request) -> None:
    """A write must say it carries JSON: 415 otherwise (check_json_body)."""
    check_json_body(request)


def bearer_credential(request: Request) -> str:
    """The credential of an `Authorization: Bearer <credential>` header; "" without one.

    Parsed as FastAPI's HTTPBearer parses it (scheme case-insensitive, credential stripped)."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


def check_json_body(request: Request) -> None:
    """A write must say it carries JSON: raises HTTPException 415 otherwise.

    A web page can send a `text/plain` (or form) POST to any address without a CORS preflight; a
    JSON content type needs one, which this API never grants. So a page the user visits cannot
    store predictions through the user's browser. Reads pass through.
    """
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in JSON_MEDIA_TYPES and not media_type.endswith("+json"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"send the body as JSON with `Content-Type: application/json` (got {media_type or 'none'!r})",
        )


SessionDep = Annotated[Session, Depends(request_session)]
ServedModelsDep = Annotated[ServedModels, Depends(get_served_models)]
SettingsDep = Annotated[ApiServerSettings, Depends(get_settings)]
