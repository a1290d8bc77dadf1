"""The one HTTP client of the churn API, used by the webapp and the scheduled prediction job.

Every failure becomes one of two exceptions, so that callers decide by kind, not by status code:
- `ApiUnavailableError`: the service cannot be reached, is too slow, or answered 5xx (or
  something that is not the API's JSON). Sending the same request later may succeed: the
  prediction job's task fails and Airflow retries it; the webapp asks the user to try again.
- `ApiRejectedError`: the service answered 4xx: this request will never be accepted as it is
  (bad rows, too many rows, a wrong token). `ApiInputError` is its 422 form, with the problems
  per row and field. Nothing of a refused request is stored.
Messages are sentences a page can show as is and a task log can print; they never contain the
token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
import requests


@dataclass(frozen=True)
class RowProblem:
    """One reason the API refused a record: `row` is the record's index in the request."""

    row: int | None
    field: str
    message: str


class ApiError(Exception):
    """A readable reason why a call to the API failed; `status` is the HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ApiUnavailableError(ApiError):
    """The API is down, too slow or failing (5xx): the same request may succeed later."""


class ApiRejectedError(ApiError):
    """The API refused the request (4xx): sending it again unchanged cannot help."""


class ApiInputError(ApiRejectedError):
    """422: the API refused some records, listed in `problems`; it stored nothing of the request."""

    def __init__(self, message: str, problems: Sequence[RowProblem]) -> None:
        super().__init__(message, status=422)
        self.problems = list(problems)


MAX_RESENDS = 2
"""A refused request is resent without its refused rows at most this often; a further refusal
means something else is wrong."""


def resend_key(batch_key: str, attempt: int) -> str:
    """The idempotency key of a request's `attempt`-th resend without refused rows (0: the
    request itself): `<key>`, `<key>:accepted`, `<key>:accepted2`, ..."""
    if attempt == 0:
        return batch_key
    return f"{batch_key}:accepted" if attempt == 1 else f"{batch_key}:accepted{attempt}"


@dataclass(frozen=True)
class SentChunk:
    """What `predict_setting_aside_refused` stored: the API's answer for the rows it kept (None
    when every row was refused), the kept rows' positions in the request (in the answer's order),
    and the refused rows' positions with the API's problems."""

    answer: dict[str, Any] | None
    kept: list[int]
    refused: dict[int, list[RowProblem]]


@dataclass
class ChurnApiClient:
    """A small typed client over the churn API's HTTP endpoints (one kept-alive session).

    Args:
        base_url: the API's root, e.g. "http://127.0.0.1:8000".
        token: the bearer token (API_TOKEN), None when the API is open.
        timeout_seconds: the limit for one call, connect plus answer.
    """

    base_url: str
    token: str | None = None
    timeout_seconds: float = 60.0
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
        echo: bool = True,
    ) -> dict[str, Any]:
        """POST /predict: one prediction per record, in request order.

        `batch_key` is an idempotency key: a key the API already holds is answered with the
        predictions stored the first time (`replayed: true`), so a retry never stores twice.
        `echo` False asks for the short answer (`POST /predict?echo=false`): each prediction's
        id, label, churn_probability and customer_id, without the echoed features and reasons.
        The body is encoded by orjson: a float NaN or infinity (which JSON cannot hold) is sent as
        null, a missing value; the readers (core/cells.py) never give one, they give None.

        Raises:
            ApiRejectedError / ApiInputError: refused (4xx); nothing stored.
            ApiUnavailableError: unreachable, too slow, 5xx, or an answer whose number of
                predictions differs from the number of records.
        """
        body = {
            "source": source, "records": list(records), "file_name": file_name, "batch_key": batch_key,
        }
        params = None if echo else {"echo": "false"}
        # orjson: 10,000 records encode in a tenth of json.dumps's time (numpy scalars as numbers)
        answer = self._call(
            "POST", "/predict", data=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), params=params,
            headers={"Content-Type": "application/json"},
        )
        predictions = answer.get("predictions", [])
        if len(predictions) != len(records):
            raise ApiUnavailableError(
                f"POST /predict returned {len(predictions)} predictions for {len(records)} records"
            )
        return answer

    def predict_setting_aside_refused(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        source: str,
        file_name: str | None,
        batch_key: str,
        echo: bool = True,
    ) -> SentChunk:
        """POST /predict, and when the API refuses some rows (422 naming them: a rule beyond the
        JSON schema), the same request again without them: the one "resend the refused rows".

        Idempotency: the first request carries `batch_key`; a resend carries `resend_key(batch_key,
        n)`. The API stores nothing of a refused request, so a retry of the whole (after a lost
        answer or a crash) is refused again the same way and its resend replays the stored rows:
        no row is ever stored twice, and every key always names the same records.

        Raises:
            ApiInputError: a refusal naming no row of the request, or rows still refused after
                MAX_RESENDS resends.
            ApiRejectedError / ApiUnavailableError: as `predict`.
        """
        kept = list(range(len(records)))
        refused: dict[int, list[RowProblem]] = {}
        for attempt in range(MAX_RESENDS + 1):
            if not kept:
                return SentChunk(answer=None, kept=[], refused=refused)
            sending = [records[i] for i in kept]
            try:
                answer = self.predict(
                    sending, source=source, file_name=file_name,
                    batch_key=resend_key(batch_key, attempt), echo=echo,
                )
            except ApiInputError as error:
                named = {p.row for p in error.problems if p.row is not None and 0 <= p.row < len(sending)}
                if not named or attempt == MAX_RESENDS:
                    raise
                for problem in error.problems:
                    if problem.row in named:
                        refused.setdefault(kept[problem.row], []).append(problem)
                kept = [original for position, original in enumerate(kept) if position not in named]
                continue
            return SentChunk(answer=answer, kept=kept, refused=refused)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def past_predictions(
        self, *, start_date: date, end_date: date, source: str, limit: int, offset: int,
    ) -> dict[str, Any]:
        """GET /past-predictions: one page of stored predictions, newest first, end date inclusive."""
        params = {
            "start_date": start_date.isoformat(), "end_date": end_date.isoformat(),
            "source": source, "limit": limit, "offset": offset,
        }
        return self._call("GET", "/past-predictions", params=params)

    def close(self) -> None:
        """Close the kept-alive connection."""
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            response = self.http.request(method, url, timeout=self.timeout_seconds, **kwargs)
        except requests.Timeout as exc:
            raise ApiUnavailableError(
                f"The prediction service at {self.base_url} did not answer within "
                f"{self.timeout_seconds:g} s. It may be overloaded; try again in a moment."
            ) from exc
        except requests.ConnectionError as exc:
            raise ApiUnavailableError(
                f"The prediction service at {self.base_url} cannot be reached. "
                "Is the API running (make run)?"
            ) from exc
        except requests.RequestException as exc:
            raise ApiUnavailableError(f"The request to {url} failed: {exc.__class__.__name__}.") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiUnavailableError(
                f"The prediction service answered {path} with something not JSON."
            ) from exc
        if not isinstance(body, dict):
            raise ApiUnavailableError(f"The prediction service answered {path} with unexpected JSON.")
        return body


def error_from_response(response: requests.Response) -> ApiError:
    """Turn an error status into an exception of the right kind, with a message a user can act on."""
    status = response.status_code
    detail = _detail(response)
    if status == 422 and isinstance(detail, list):
        problems = [_row_problem(item) for item in detail if isinstance(item, Mapping)]
        shown = "; ".join(f"row {p.row}, {p.field}: {p.message}" for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        return ApiInputError(
            f"The prediction service refused {len(problems)} value(s) (HTTP 422): {shown}{more}.", problems,
        )
    reasons = {
        401: "The prediction service wants a valid API token (set API_TOKEN).",
        413: "Too many records in one request for the prediction service.",
        503: "The prediction service is up but cannot work right now (its database may be down).",
    }
    message = reasons.get(status, f"The prediction service answered with error {status}.")
    if isinstance(detail, str) and detail:
        message = f"{message} Detail: {detail}"
    kind = ApiRejectedError if 400 <= status < 500 else ApiUnavailableError
    return kind(message, status=status)


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
