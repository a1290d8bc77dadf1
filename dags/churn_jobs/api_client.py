"""The prediction job's client of the model service: POST /predict over HTTP, never the model itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import requests


class PredictionApiError(RuntimeError):
    """The API did not store a batch (down, 5xx): the task fails and retries."""


class PredictionApiRejectedError(PredictionApiError):
    """The API refused a batch (4xx: bad rows, too many, wrong token): sending it again cannot help."""


class PredictionApiClient:
    """One requests Session (kept-alive connection, bearer token) to the model service."""

    def __init__(self, api_url: str, token: str | None = None, timeout_seconds: float = 60.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def predict_scheduled(
        self, records: Sequence[Mapping[str, Any]], *, file_name: str, batch_key: str,
    ) -> list[dict[str, Any]]:
        """Store the predictions of one chunk (source=scheduled); returns them in record order.

        A batch key the API already holds is answered with the stored predictions ("replayed"),
        so sending a chunk again after a failure never stores its rows twice.
        """
        body = {"source": "scheduled", "records": list(records), "file_name": file_name,
                "batch_key": batch_key}
        try:
            response = self.session.post(f"{self.api_url}/predict", json=body, timeout=self.timeout_seconds)
        except requests.RequestException as error:
            raise PredictionApiError(f"the API at {self.api_url} is unreachable: {error}") from error
        if 400 <= response.status_code < 500:
            raise PredictionApiRejectedError(
                f"POST /predict refused {batch_key} ({response.status_code}): {response.text[:2000]}"
            )
        if response.status_code != 200:
            raise PredictionApiError(
                f"POST /predict for {batch_key} answered {response.status_code}: {response.text[:2000]}"
            )
        predictions: list[dict[str, Any]] = response.json()["predictions"]
        if len(predictions) != len(records):
            raise PredictionApiError(
                f"POST /predict for {batch_key} returned {len(predictions)} predictions "
                f"for {len(records)} records"
            )
        return predictions

    def close(self) -> None:
        self.session.close()
