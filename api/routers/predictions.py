"""POST /predict and GET /past-predictions: parse the request, call the model and db/, answer.

/predict parses and validates the raw body in one pass (pydantic's `model_validate_json`, in
Rust) and writes its JSON answer directly: for 10,000 records, FastAPI's default path (json.loads,
then validation, then validating the response model again before encoding) cost more than the
model and the database together. The OpenAPI document still shows both models. The record limit
is a setting of the running app (MAX_RECORDS_PER_REQUEST), read per request from `app.state`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from prometheus_client import Counter
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep, bearer_credential, check_json_body, check_token, get_settings, served_models
from api.errors import InputProblemsError
from api.schemas import (
    InputErrors,
    Message,
    PastPredictions,
    PredictionResponse,
    SourceFilter,
    prediction_request_model,
)
from api.serving import score_in_shadow
from db.predictions import (
    count_predictions,
    create_predictions,
    find_batch,
    list_predictions,
    reason_codes,
    store_one_prediction,
)
from db.session import new_session
from model.contract import CONSISTENCY_COLUMNS, IDENTIFIER, check_consistency, inconsistent_rows
from model.predictor import Predictor
from model.reasons import stored_values

router = APIRouter(tags=["predictions"])

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": InputErrors, "description": "Bad input: one entry per (row, field); nothing stored"},
    503: {"model": Message, "description": "The database or the model is unavailable"},
}
REQUEST_SCHEMA_NAME = "PredictionRequest"
# A record is ~500 bytes of JSON; 4 KiB each leaves room for long ids and generous whitespace
# while a runaway upload is cut off before it fills the memory.
MAX_BYTES_PER_RECORD = 4096
ECHO_DESCRIPTION = (
    "false: each prediction is answered with its id, label, churn_probability and customer_id only, "
    "without the echoed `features`, `reasons` and `rest_contribution` (still stored, and returned by "
    "GET /past-predictions). For batch clients that do not read them: a 10,000-record answer is "
    "about ten times smaller and much faster to build"
)
COLUMNWISE_CHECK_FROM = 32  # records; fewer are checked one by one (numpy's set-up costs more)
BOOL = TypeAdapter(bool)  # FastAPI's parsing of a bool query parameter ("true", "0", "off", ...)
FIRST_QUERYABLE_DAY, LAST_QUERYABLE_DAY = date.min + timedelta(days=1), date.max - timedelta(days=1)


async def parse_prediction_request(request: Request) -> BaseModel:
    """The /predict body, validated against the request model of this app's record limit.

    Raises HTTPException 413 when the body outgrows any request within the limit, and
    RequestValidationError (422, one entry per row and field) when a record breaks the contract.
    """
    max_records = get_settings(request).max_records_per_request
    body = await _read_body(request, max_records * MAX_BYTES_PER_RECORD, max_records)
    try:
        return prediction_request_model(max_records).model_validate_json(body)
    except ValidationError as error:  # same 422/413 shape as every other validation error
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from error


async def serve_predict(request: Request) -> Response:
    """POST /predict: check, parse, score and store (one record on the event loop, more in a worker
    thread, where a session waits on the database); answer.

    Raises HTTPException 401 (token), 415 (not JSON), 413 (too many records), 503 (no model),
    RequestValidationError 422 (a record or `echo` breaks the contract) and InputProblemsError
    422 (inconsistent fields), in that order; database errors propagate to api/errors.py (503).
    """
    check_token(request, bearer_credential(request))
    check_json_body(request)
    body: Any = await parse_prediction_request(request)
    models = served_models(request)
    echo = _echo_parameter(request)
    _reject_inconsistent(body.records)
    state = request.app.state
    if body.batch_key is None and len(body.records) == 1:  # one statement: awaited, no thread
        response, features = await _answer_one(state.async_engine, models.champion, body, echo)
    else:
        response, features = await run_in_threadpool(_answer, models.champion, body, echo)
    background = None
    if not response["replayed"]:
        state.model_call_records.observe(len(body.records))
        _count_predictions(state.predictions_counter, body.source, response)
        if models.challenger is not None:
            background = BackgroundTask(score_in_shadow, models, [p["id"] for p in response["predictions"]],
                                        features)
    return Response(orjson.dumps(response), media_type="application/json", background=background)


def _echo_parameter(request: Request) -> bool:
    """The `echo` query parameter, parsed as FastAPI parses a bool; RequestValidationError if not one."""
    given = request.query_params.get("echo")
    if given is None:
        return True
    try:
        return BOOL.validate_python(given)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("query", "echo")} for e in error.errors(include_url=False)]
        ) from error


def _answer(predictor: Predictor, body: Any, echo: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The answer of a /predict request (in a worker thread: it waits on the database).

    A batch key already stored is answered with its stored predictions (`replayed`), nothing
    scored; otherwise the records are scored, stored and committed. Returns the answer and the
    records' features (for the challenger's shadow scoring)."""
    with new_session() as session:
        if body.batch_key is not None:
            stored = find_batch(session=session, batch_key=body.batch_key)
            if stored is not None:
                return _replay(stored, echo), []
        return _score_and_store(session, predictor, body, echo)


class PredictRoute(APIRoute):
    """/predict's route: documented by FastAPI from `predict`'s signature, served by `serve_predict`.

    FastAPI's request handler solves the dependency tree of every request (the router's token and
    content-type checks, the query, the session, the models: seven `solve_dependencies` calls) and
    wraps the sync endpoint in a second layer of calls; for one record that cost more than scoring
    it (bench/bench_api_cpu.py). `serve_predict` makes the same checks in the same order, with the
    same errors, as plain calls.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return serve_predict


async def predict(
    request: Request, echo: Annotated[bool, Query(description=ECHO_DESCRIPTION)] = True,
) -> Response:
    """Score one or many customer records and store every prediction in one transaction.

    While a challenger is served, it scores the same records after the answer is sent
    (shadow_predictions, api/serving.py::score_in_shadow); never returned, never counted.
    """
    return await serve_predict(request)


router.add_api_route(
    "/predict", predict, methods=["POST"], route_class_override=PredictRoute,
    response_model=PredictionResponse,
    responses={**ERROR_RESPONSES, 413: {"model": Message, "description": "Too many records"}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{REQUEST_SCHEMA_NAME}"}}}}},
)


async def _read_body(request: Request, max_bytes: int, max_records: int) -> bytes:
    """The body, refused (413) as soon as it outgrows any request within the record limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _body_too_large(max_bytes, max_records)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _body_too_large(max_bytes, max_records)
        chunks.append(chunk)
    return b"".join(chunks)


def _body_too_large(max_bytes: int, max_records: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"request body above {max_bytes:,} bytes: more than {max_records} records "
        "(MAX_RECORDS_PER_REQUEST) can hold; split the batch",
    )


def request_schema_components(max_records: int) -> dict[str, Any]:
    """JSON schemas of the /predict body and what it references, for the OpenAPI document."""
    schema = prediction_request_model(max_records).model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    return {**schema.pop("$defs", {}), REQUEST_SCHEMA_NAME: schema}


def _reject_inconsistent(records: Sequence[Mapping[str, Any]]) -> None:
    """Cross-field rules of the contract (valid values that cannot be true together).

    Many records are screened on columns at once (model.contract.inconsistent_rows: ~1 ms for
    10,000 records where `check_consistency` one by one took ~13 ms); the rows it flags get
    `check_consistency`'s messages. Raises InputProblemsError naming each row."""
    rows: Iterable[int] = range(len(records))
    if len(records) > COLUMNWISE_CHECK_FROM:
        columns = (np.array([record.get(name) for record in records], dtype=np.float64)
                   for name in CONSISTENCY_COLUMNS)
        rows = np.flatnonzero(inconsistent_rows(*columns)).tolist()
    problems = [(row, field, message) for row in rows for field, message in check_consistency(records[row])]
    if problems:
        raise InputProblemsError(problems)


async def _answer_one(
    engine: AsyncEngine, predictor: Predictor, body: Any, echo: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The answer to one record without a batch key, on the event loop: scored (about 0.1 ms of
    CPU, as much as a thread hop costs), then stored by one awaited autocommitted statement
    (db.predictions.store_one_prediction: one round trip instead of three)."""
    records: list[dict[str, Any]] = body.records
    labels, probabilities, reasons = _scores(predictor, records)
    stored_id = await store_one_prediction(
        engine, source=body.source, record=records[0], label=labels[0], probability=probabilities[0],
        reasons=reasons[0], model_version=predictor.version, file_name=body.file_name,
    )
    return _answered(predictor, [stored_id], records, labels, probabilities, reasons, echo), records


def _scores(predictor: Predictor, records: list[dict[str, Any]]) -> tuple[list[int], list[float], list[Any]]:
    """Labels, probabilities and stored reason values (model.reasons.stored_values) of the records."""
    scores = predictor.score(records)
    assert scores.reasons is not None
    return scores.labels.tolist(), scores.probabilities.tolist(), stored_values(scores.reasons)


def _score_and_store(
    session: Session, predictor: Predictor, body: Any, echo: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score the records, store them and commit once; a concurrent twin's batch is replayed.

    Returns the answer (with each record's features and reasons when `echo`) and the records'
    features (for the challenger's shadow scoring)."""
    records: list[dict[str, Any]] = body.records
    labels, probabilities, reasons = _scores(predictor, records)
    stored = create_predictions(
        session=session, source=body.source, records=records, labels=labels,
        probabilities=probabilities, reasons=reasons, model_version=predictor.version,
        file_name=body.file_name, batch_key=body.batch_key,
    )
    # a concurrent twin with the same key committed first: answer with what it stored
    replayed = (find_batch(session=session, batch_key=body.batch_key) or []) if stored.replayed else None
    session.commit()
    if replayed is not None:
        return _replay(replayed, echo), [row["features"] for row in replayed]
    return _answered(predictor, stored.ids, records, labels, probabilities, reasons, echo), records


def _answered(
    predictor: Predictor, ids: list[int], records: list[dict[str, Any]], labels: list[int],
    probabilities: list[float], reasons: list[Any], echo: bool,
) -> dict[str, Any]:
    """The /predict answer of freshly stored predictions, in record order."""
    # the validated records hold exactly the features plus the optional id: reused, not copied
    if echo:
        predictions = [
            {"id": id_, "label": label, "churn_probability": probability,
             "customer_id": record.pop(IDENTIFIER, None), "reasons": reason_codes(reason, record),
             "rest_contribution": reason[-1], "features": record}
            for id_, record, label, probability, reason in zip(
                ids, records, labels, probabilities, reasons, strict=True)
        ]
    else:
        predictions = [
            {"id": id_, "label": label, "churn_probability": probability,
             "customer_id": record.pop(IDENTIFIER, None)}
            for id_, record, label, probability in zip(
                ids, records, labels, probabilities, strict=True)
        ]
    return {"model_version": predictor.version, "replayed": False, "predictions": predictions}


def _replay(rows: Sequence[Mapping[str, Any]], echo: bool) -> dict[str, Any]:
    """The stored predictions of an already-seen batch key, as /predict returned them the first time."""
    return {
        "model_version": rows[0]["model_version"] if rows else "",
        "replayed": True,
        "predictions": [
            {"id": row["id"], "label": row["predicted_label"],
             "churn_probability": row["churn_probability"], "customer_id": row["customer_id"],
             **({"reasons": row["reasons"], "rest_contribution": row["rest_contribution"],
                 "features": row["features"]} if echo else {})}
            for row in rows
        ],
    }


def _count_predictions(counter: Counter, source: str, response: Mapping[str, Any]) -> None:
    churn = sum(p["label"] for p in response["predictions"])
    stay = len(response["predictions"]) - churn
    if churn:
        _prediction_series(counter, source, "1").inc(churn)
    if stay:
        _prediction_series(counter, source, "0").inc(stay)


@lru_cache(maxsize=64)
def _prediction_series(counter: Counter, source: str, label: str) -> Counter:
    """The counter's series of (source, label), looked up once (`labels()` locks at every call)."""
    return counter.labels(source=source, label=label)


@router.get("/past-predictions", response_model=PastPredictions, responses=ERROR_RESPONSES)
def list_past_predictions(
    session: SessionDep,
    start_date: Annotated[date, Query(description="First day, inclusive (YYYY-MM-DD)")],
    end_date: Annotated[date, Query(description="Last day, inclusive (YYYY-MM-DD)")],
    source: SourceFilter = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    timezone: Annotated[str, Query(description="IANA zone in which the dates are days")] = "UTC",
) -> dict[str, Any]:
    """Stored predictions with their features, newest first, the end date included."""
    zone = _zone(timezone)
    if start_date > end_date:
        raise InputProblemsError([(None, "start_date", f"{start_date} is after end_date {end_date}")])
    # the calendar's first and last days have no day before or after them in Python: kept one day
    # inside, a window that reaches them still covers every stored prediction
    start = datetime.combine(max(start_date, FIRST_QUERYABLE_DAY), time.min, zone)
    end = datetime.combine(min(end_date, LAST_QUERYABLE_DAY) + timedelta(days=1), time.min, zone)
    only = None if source == "all" else source
    total = count_predictions(session=session, start=start, end=end, source=only)
    rows = list_predictions(
        session=session, start=start, end=end, source=only, limit=limit, offset=offset,
    ) if offset < total else []
    return {"total": total, "limit": limit, "offset": offset, "items": [_stored(row) for row in rows]}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise InputProblemsError([(None, "timezone", f"unknown time zone {name!r}")]) from error


def _stored(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "created_at": row["created_at"].astimezone(UTC),
        "source": row["source"],
        "file_name": row["file_name"],
        "model_version": row["model_version"],
        "label": row["predicted_label"],
        "churn_probability": row["churn_probability"],
        "customer_id": row["customer_id"],
        "reasons": row["reasons"],
        "rest_contribution": row["rest_contribution"],
        "features": row["features"],
    }
