"""POST /predict and GET /past-predictions.

No `from __future__ import annotations` here: the request model is built per app inside
`prediction_router`, and FastAPI must see the class itself, not its name, in the signature.
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from api import crud
from api.deps import PredictorDep, SessionDep
from api.errors import InputProblemsError
from api.schemas import (
    InputErrors,
    Message,
    PastPredictions,
    PredictionResponse,
    SourceFilter,
    prediction_request_model,
)
from model.contract import FEATURE_NAMES, IDENTIFIER, check_consistency
from model.predictor import Predictor

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": InputErrors, "description": "Bad input: one entry per (row, field); nothing stored"},
    503: {"model": Message, "description": "The database or the model is unavailable"},
}


def prediction_router(max_records: int) -> APIRouter:
    """The predictions router; the request model carries this app's record limit."""
    router = APIRouter(tags=["predictions"])
    PredictionRequest = prediction_request_model(max_records)

    @router.post(
        "/predict",
        response_model=PredictionResponse,
        responses={**ERROR_RESPONSES, 413: {"model": Message, "description": "Too many records"}},
    )
    def predict(
        body: PredictionRequest,  # type: ignore[valid-type]
        session: SessionDep,
        predictor: PredictorDep,
        request: Request,
    ) -> dict[str, Any]:
        """Score one or many customer records and store every prediction in one transaction."""
        records: list[dict[str, Any]] = body.records  # type: ignore[attr-defined]
        _reject_inconsistent(records)
        if body.batch_key is not None:  # type: ignore[attr-defined]
            stored = crud.find_batch(session=session, batch_key=body.batch_key)  # type: ignore[attr-defined]
            if stored is not None:
                return _replay(stored)
        response = _score_and_store(session, predictor, body)
        _count_predictions(request, body.source, response)  # type: ignore[attr-defined]
        return response

    router.add_api_route(
        "/past-predictions", list_past_predictions, methods=["GET"], response_model=PastPredictions,
        responses=ERROR_RESPONSES,
    )
    return router


def _reject_inconsistent(records: Sequence[Mapping[str, Any]]) -> None:
    """Cross-field rules of the contract (valid values that cannot be true together)."""
    problems = [
        (row, field, message)
        for row, record in enumerate(records)
        for field, message in check_consistency(record)
    ]
    if problems:
        raise InputProblemsError(problems)


def _score_and_store(session: Session, predictor: Predictor, body: Any) -> dict[str, Any]:
    records: list[dict[str, Any]] = body.records
    probabilities = predictor.predict_proba(records)
    labels = (probabilities >= predictor.threshold).astype(int).tolist()
    probabilities = probabilities.tolist()
    stored = crud.store_predictions(
        session=session, source=body.source, records=records, labels=labels,
        probabilities=probabilities, model_version=predictor.version, file_name=body.file_name,
        batch_key=body.batch_key,
    )
    if stored.replayed:  # a concurrent twin with the same key committed first
        session.commit()
        return _replay(crud.find_batch(session=session, batch_key=body.batch_key) or [])
    session.commit()
    predictions = [
        {"id": id_, "label": label, "churn_probability": probability,
         "customer_id": record.get(IDENTIFIER), "features": _features_of(record)}
        for id_, record, label, probability in zip(stored.ids, records, labels, probabilities, strict=True)
    ]
    return {"model_version": predictor.version, "replayed": False, "predictions": predictions}


def _features_of(record: Mapping[str, Any]) -> dict[str, Any]:
    return {name: record.get(name) for name in FEATURE_NAMES}


def _replay(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The stored predictions of an already-seen batch key, as /predict returned them the first time."""
    return {
        "model_version": rows[0]["model_version"] if rows else "",
        "replayed": True,
        "predictions": [
            {"id": row["id"], "label": row["predicted_label"],
             "churn_probability": row["churn_probability"], "customer_id": row[IDENTIFIER],
             "features": _features_of(row)}
            for row in rows
        ],
    }


def _count_predictions(request: Request, source: str, response: Mapping[str, Any]) -> None:
    counter = request.app.state.predictions_counter
    churn = sum(p["label"] for p in response["predictions"])
    stay = len(response["predictions"]) - churn
    if churn:
        counter.labels(source=source, label="1").inc(churn)
    if stay:
        counter.labels(source=source, label="0").inc(stay)


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
    start = datetime.combine(start_date, time.min, zone)
    end = datetime.combine(end_date + timedelta(days=1), time.min, zone)
    only = None if source == "all" else source
    total = crud.count_predictions(session=session, start=start, end=end, source=only)
    rows = crud.list_predictions(
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
        "customer_id": row[IDENTIFIER],
        "features": _features_of(row),
    }
