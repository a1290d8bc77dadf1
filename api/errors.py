"""Error responses: bad input is a 422 naming the row and the field, a database outage a 503.

No input reaches a 500: validation errors of any shape are turned into the contract's
`{"detail": [{"row", "field", "message"}]}`; an oversized batch is a 413.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

FRIENDLY_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "field required",
    "string_pattern_mismatch": "text must not contain the NUL character (\\u0000)",  # our only pattern
}
MAX_SHOWN_INPUT = 80


class InputProblemsError(Exception):
    """Bad input found after schema validation (cross-field rules): one (row, field, message) each."""

    def __init__(self, problems: Sequence[tuple[int | None, str, str]]) -> None:
        super().__init__(f"{len(problems)} input problems")
        self.problems = list(problems)


def describe_error(error: dict[str, Any]) -> dict[str, Any]:
    """One pydantic error as {row, field, message}; `loc` is ("body"|"query", "records", row, field)."""
    if error.get("type") == "json_invalid":  # loc is ("body", <character position>)
        reason = error.get("ctx", {}).get("error", "cannot be parsed")
        return {"row": None, "field": "body", "message": f"invalid JSON: {reason}"}
    where = [part for part in error.get("loc", ()) if part not in ("body", "query", "path")]
    row = None
    if len(where) >= 2 and where[0] == "records" and isinstance(where[1], int):
        row, where = where[1], where[2:]
        field = str(where[0]) if where else "record"
    else:
        field = ".".join(str(part) for part in where) or "body"
    if field == "body" and error.get("type") == "missing":
        message = "a JSON object with `source` and `records` is required"
        return {"row": None, "field": "body", "message": message}
    message = FRIENDLY_MESSAGES.get(error.get("type", ""), error.get("msg", "invalid value"))
    if error.get("type") not in FRIENDLY_MESSAGES and "input" in error and field != "body":
        message = f"{message} (got {_short_repr(error['input'])})"
    return {"row": row, "field": field, "message": message}


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_INPUT else text[: MAX_SHOWN_INPUT - 3] + "..."


def _too_many_records(errors: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    for error in errors:
        if error.get("type") == "too_long" and tuple(error.get("loc", ())) == ("body", "records"):
            return error
    return None


async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = list(error.errors())
    too_long = _too_many_records(errors)
    if too_long is not None:
        limit = request.app.state.settings.max_records_per_request
        return JSONResponse(
            {"detail": f"{too_long.get('ctx', {}).get('actual_length', 'too many')} records in one "
                       f"request; the limit is {limit} (MAX_RECORDS_PER_REQUEST): split the batch"},
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        )
    return JSONResponse(
        {"detail": [describe_error(e) for e in errors]},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def on_input_problems(request: Request, error: InputProblemsError) -> JSONResponse:
    detail = [{"row": row, "field": field, "message": message} for row, field, message in error.problems]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def on_database_down(request: Request, error: Exception) -> JSONResponse:
    log.warning("database unavailable during %s %s: %s", request.method, request.url.path, error)
    return JSONResponse(
        {"detail": "the database is unavailable; nothing was stored, retry in a moment"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


DATABASE_DOWN_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,  # connection refused or lost (wrapped by SQLAlchemy)
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no pooled connection in time
    psycopg.OperationalError,  # the same, raised by the raw COPY
    psycopg.InterfaceError,
)


def register_error_handlers(app: FastAPI) -> None:
    # Starlette types every handler as taking Exception; each here is registered for its own type
    app.add_exception_handler(RequestValidationError, on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(InputProblemsError, on_input_problems)  # type: ignore[arg-type]
    for error_type in DATABASE_DOWN_ERRORS:
        app.add_exception_handler(error_type, on_database_down)
