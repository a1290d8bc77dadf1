"""Predictions asked for from the webapp, sent once however often Streamlit reruns the page.

Streamlit reruns the whole script on every interaction, and stops a run midway when the user
clicks during a long upload. A `Submission` lives in `st.session_state` under the key
`<content digest>:<submission number>`; a rerun finds it there and either shows its results or
sends the chunks not sent yet. Each chunk carries an idempotency key (`batch_key`), so a chunk
whose answer was lost to an interrupted run is replayed by the API, never stored twice.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.api_client import ApiError, ApiInputError, ChurnApiClient
from webapp.csv_check import RowError

SESSION_ID_KEY = "webapp_session_id"
ProgressCallback = Callable[[int, int], None]


@dataclass
class Submission:
    """Records to predict, their row numbers in the source, and what came back so far."""

    key: str
    action: str
    records: list[dict[str, Any]]
    record_rows: list[int]
    file_name: str | None
    batch_prefix: str
    chunk_size: int
    predictions: list[dict[str, Any]] = field(default_factory=list)
    predicted_rows: list[int] = field(default_factory=list)
    rejected: list[RowError] = field(default_factory=list)
    sent_chunks: int = 0
    model_version: str | None = None
    error: str | None = None

    @property
    def total_chunks(self) -> int:
        return -(-len(self.records) // self.chunk_size)

    @property
    def finished(self) -> bool:
        return self.error is not None or self.sent_chunks >= self.total_chunks

    def chunk(self, index: int) -> tuple[list[dict[str, Any]], list[int]]:
        """Records of chunk `index` and their row numbers."""
        start, stop = index * self.chunk_size, (index + 1) * self.chunk_size
        return self.records[start:stop], self.record_rows[start:stop]


def content_digest(records: Sequence[Mapping[str, Any]]) -> str:
    """A stable fingerprint of what is sent: same records in the same order, same digest."""
    payload = json.dumps(list(records), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def current_submission(state: Mapping[str, Any], slot: str) -> Submission | None:
    value = state.get(slot)
    return value if isinstance(value, Submission) else None


def submit(
    state: MutableMapping[str, Any],
    slot: str,
    *,
    action: str,
    records: list[dict[str, Any]],
    record_rows: list[int],
    file_name: str | None,
    chunk_size: int,
) -> Submission:
    """The submission of one user action (a click, an upload), created and counted only once.

    `action` names the user action (the form's click count, the uploaded file's id): a rerun
    repeats the action and gets the stored submission back instead of a new one.
    """
    digest = content_digest(records)
    existing = current_submission(state, slot)
    if existing is not None and existing.action == action and existing.key.startswith(f"{digest}:"):
        return existing
    number = int(state.get(f"{slot}_count", 0)) + 1
    state[f"{slot}_count"] = number
    session_id = state.setdefault(SESSION_ID_KEY, uuid.uuid4().hex)
    submission = Submission(
        key=f"{digest}:{number}",
        action=action,
        records=records,
        record_rows=record_rows,
        file_name=file_name,
        batch_prefix=f"webapp:{session_id}:{slot}:{number}:{digest[:16]}",
        chunk_size=chunk_size,
    )
    state[slot] = submission
    return submission


def send_pending_chunks(
    submission: Submission, client: ChurnApiClient, on_progress: ProgressCallback | None = None,
) -> None:
    """Send the chunks not sent yet; stop at the first failure and keep its message."""
    while not submission.finished:
        index = submission.sent_chunks
        try:
            send_chunk(submission, client, index)
        except ApiError as exc:
            submission.error = failure_message(submission, exc)
            return
        submission.sent_chunks = index + 1  # recorded before the next Streamlit call can stop the run
        if on_progress is not None:
            on_progress(submission.sent_chunks, submission.total_chunks)


def send_chunk(submission: Submission, client: ChurnApiClient, index: int) -> None:
    """POST one chunk; rows the API refuses (rules beyond the JSON schema) are set aside, the rest
    resent (`ChurnApiClient.predict_setting_aside_refused`, the one resend and its key rule)."""
    records, rows = submission.chunk(index)
    try:
        sent = client.predict_setting_aside_refused(
            records, source="webapp", file_name=submission.file_name,
            batch_key=f"{submission.batch_prefix}:{index}",
        )
    except ApiInputError as exc:
        if any(p.row is not None for p in exc.problems):
            raise ApiError("The prediction service kept refusing rows of the same chunk.") from exc
        raise
    # kept aside until the chunk is stored, so a rerun never counts twice
    rejected = [
        RowError(rows[position], problem.field, problem.message)
        for position, problems in sorted(sent.refused.items()) for problem in problems
    ]
    if sent.answer is not None:
        submission.model_version = sent.answer.get("model_version")
        # each prediction keeps the version that answered it: a promotion may fall between chunks
        submission.predictions.extend({**prediction, "model_version": submission.model_version}
                                      for prediction in sent.answer.get("predictions", []))
        submission.predicted_rows.extend(rows[position] for position in sent.kept)
    submission.rejected.extend(rejected)


def failure_message(submission: Submission, exc: ApiError) -> str:
    if isinstance(exc, ApiInputError):
        reasons = "; ".join(f"{p.field}: {p.message}" for p in exc.problems[:5])
        message = f"The prediction service refused the request ({reasons})."
    else:
        message = exc.message
    if submission.predictions:
        message += (
            f" {len(submission.predictions)} of {len(submission.records)} rows were predicted and "
            "stored before the failure; their results are shown below."
        )
    return message
