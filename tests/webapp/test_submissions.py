"""Sending predictions in chunks, once, even when Streamlit stops a run midway (real API and database)."""

from __future__ import annotations

import pytest

from core.api_client import ChurnApiClient
from tests.factories import customer_records
from tests.webapp.conftest import stored_predictions, unused_url
from webapp.submissions import SESSION_ID_KEY, send_pending_chunks, submit


class RunStopped(Exception):  # noqa: N818  (stands for Streamlit's StopException on a user click)
    pass


def test_the_same_action_gives_back_the_same_submission(clean_db: str) -> None:
    state: dict = {}
    first = submit(state, "slot", action="file-1", records=customer_records(3), record_rows=[2, 3, 4],
                   file_name="a.csv", chunk_size=2)
    again = submit(state, "slot", action="file-1", records=customer_records(3), record_rows=[2, 3, 4],
                   file_name="a.csv", chunk_size=2)
    other = submit(state, "slot", action="file-2", records=customer_records(3), record_rows=[2, 3, 4],
                   file_name="a.csv", chunk_size=2)
    assert again is first and other is not first
    assert first.key.endswith(":1") and other.key.endswith(":2")  # content digest + submission number
    assert first.key.split(":")[0] == other.key.split(":")[0]
    assert state[SESSION_ID_KEY] in other.batch_prefix


def test_chunks_are_sent_in_order_with_progress(webapp_env: str) -> None:
    state: dict = {}
    submission = submit(state, "slot", action="a", records=customer_records(5, tenure=lambda i: i),
                        record_rows=[2, 3, 4, 5, 6], file_name="five.csv", chunk_size=2)
    progress: list[tuple[int, int]] = []
    client = ChurnApiClient(webapp_env)
    send_pending_chunks(submission, client, lambda done, total: progress.append((done, total)))
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert [p["features"]["tenure"] for p in submission.predictions] == [0, 1, 2, 3, 4]
    assert submission.predicted_rows == [2, 3, 4, 5, 6] and submission.finished
    assert stored_predictions() == 5


def test_a_run_stopped_midway_resumes_without_storing_twice(webapp_env: str) -> None:
    client = ChurnApiClient(webapp_env)
    submission = submit({}, "slot", action="a", records=customer_records(6), record_rows=list(range(2, 8)),
                        file_name="six.csv", chunk_size=2)

    def stop_after_first_chunk(done: int, total: int) -> None:
        raise RunStopped

    with pytest.raises(RunStopped):
        send_pending_chunks(submission, client, stop_after_first_chunk)
    assert submission.sent_chunks == 1 and stored_predictions() == 2

    # the answer to chunk 1 is lost (the run stopped while it was in flight): the API stored it...
    lost, _ = submission.chunk(1)
    client.predict(lost, file_name="six.csv", batch_key=f"{submission.batch_prefix}:1")
    assert stored_predictions() == 4
    # ...and the rerun that resends it gets it replayed, not stored again
    send_pending_chunks(submission, client)
    assert submission.finished and len(submission.predictions) == 6
    assert stored_predictions() == 6


def test_an_api_failure_keeps_what_was_stored_and_says_so(webapp_env: str) -> None:
    submission = submit({}, "slot", action="a", records=customer_records(4), record_rows=[2, 3, 4, 5],
                        file_name="four.csv", chunk_size=2)
    client = ChurnApiClient(webapp_env)

    def api_goes_down(done: int, total: int) -> None:
        client.base_url = unused_url(webapp_env)

    send_pending_chunks(submission, client, api_goes_down)
    assert submission.finished and submission.sent_chunks == 1
    assert "cannot be reached" in (submission.error or "")
    assert "2 of 4 rows were predicted and stored before the failure" in (submission.error or "")
