"""The one module of the webapp that talks to the API (see the API contract in the README).

Every failure (service down, too slow, an error status, a body that is not JSON) becomes an
`ApiError` whose message a page can show as is: the pages never see a requests exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import requests


@dataclass(frozen=True)
class RowProblem:
    """One reason the API refused a record: `row` is the record's index in the request."""

    row: int | None
    field: str
    message: str


class ApiError(Exception):
    """A readable reason why a call to the API failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ApiInputError(ApiError):
    """422: the API refused some records; it stored nothing from the request."""

    def __init__(self, message: str, problems: Sequence[RowProblem]) -> None:
        super().__init__(message, status=422)
        self.problems = list(problems)


@dataclass
class ChurnApiClient:
    """A small typed client over the churn API's HTTP endpoints."""

    base_url: str
    token: str | None = None
    timeout_seconds: float = 30.0
    http: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if self.token:
            self.http.headers["Authorization"] = f"Bearer {self.token}"

    def model_info(self) -> dict[str, Any]:
        """GET /model: version, metrics, threshold and the record JSON schema."""
        return self._call("GET", "/model")

    def predict(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        source: str = "webapp",
        file_name: str | None = None,
        batch_key: str | None = None,
    ) -> dict[str, Any]:
        """POST /predict: one prediction per record, in request order."""
        body = {
            "source": source, "records": list(records), "file_name": file_name, "batch_key": batch_key,
        }
        return self._call("POST", "/predict", json=body)

    def past_predictions(
        self, *, start_date: date, end_date: date, source: str, limit: int, offset: int,
    ) -> dict[str, Any]:
        """GET /past-predictions: one page of stored predictions, newest first, end date inclusive."""
        params = {
            "start_date": start_date.isoformat(), "end_date": end_date.isoformat(),
            "source": source, "limit": limit, "offset": offset,
        }
        return self._call("GET", "/past-predictions", params=params)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            response = self.http.request(method, url, timeout=self.timeout_seconds, **kwargs)
        except requests.Timeout as exc:
            raise ApiError(
                f"The prediction service at {self.base_url} did not answer within "
                f"{self.timeout_seconds:g} s. It may be overloaded; try again in a moment."
            ) from exc
        except requests.ConnectionError as exc:
            raise ApiError(
                f"The prediction service at {self.base_url} cannot be reached. "
                "Is the API running (make run)?"
            ) from exc
        except requests.RequestException as exc:
            raise ApiError(f"The request to {url} failed: {exc.__class__.__name__}.") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(f"The prediction service answered {path} with something not JSON.") from exc


def error_from_response(response: requests.Response) -> ApiError:
    """Turn an error status into a message a user can act on."""
    status = response.status_code
    detail = _detail(response)
    if status == 422 and isinstance(detail, list):
        problems = [_row_problem(item) for item in detail if isinstance(item, Mapping)]
        return ApiInputError(f"The prediction service refused {len(problems)} value(s).", problems)
    reasons = {
        401: "The prediction service wants a valid API token (set API_TOKEN for the webapp).",
        413: "Too many records in one request for the prediction service.",
        503: "The prediction service is up but cannot work right now (its database may be down).",
    }
    message = reasons.get(status, f"The prediction service answered with error {status}.")
    if isinstance(detail, str) and detail:
        message = f"{message} Detail: {detail}"
    return ApiError(message, status=status)


def _detail(response: requests.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or None
    return body.get("detail") if isinstance(body, Mapping) else None


def _row_problem(item: Mapping[str, Any]) -> RowProblem:
    row = item.get("row")
    return RowProblem(
        row=row if isinstance(row, int) else None,
        field=str(item.get("field", "")),
        message=str(item.get("message", "invalid value")),
    )
