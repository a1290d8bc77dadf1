"""GroupScorer: concurrent small requests share model calls and each gets exactly its own results."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from api.batching import GroupScorer
from model.predictor import Predictor
from tests.factories import customer_record, customer_records

THREADS = 16


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor()


def _records(count: int) -> list[dict]:
    return customer_records(
        count, id_prefix=None, tenure=lambda i: i, total_charges=lambda i: 70.0 * i,
        contract=lambda i: ("Month-to-month", "Two year")[i % 2],
    )


def test_concurrent_callers_share_calls_and_get_their_own_rows(predictor: Predictor) -> None:
    scorer = GroupScorer(predictor)
    requests = [_records(1 + i % 3) for i in range(THREADS)]
    results: list[np.ndarray | None] = [None] * THREADS
    start = threading.Barrier(THREADS)

    def call(i: int) -> None:
        start.wait()
        results[i] = scorer.predict_proba(requests[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    for request, result in zip(requests, results, strict=True):
        assert result is not None
        np.testing.assert_allclose(result, predictor.predict_proba(request), rtol=0, atol=1e-12)
    assert scorer.calls < THREADS  # calls were shared
    assert not scorer._scoring and not scorer._queue  # nothing left behind


def test_a_lone_request_is_scored_at_once_and_large_ones_alone(predictor: Predictor) -> None:
    scorer = GroupScorer(predictor, share_up_to=10)
    np.testing.assert_allclose(scorer.predict_proba(_records(3)), predictor.predict_proba(_records(3)))
    np.testing.assert_allclose(scorer.predict_proba(_records(50)), predictor.predict_proba(_records(50)))
    assert scorer.calls == 2


def test_an_error_reaches_the_caller_and_the_scorer_keeps_working(predictor: Predictor) -> None:
    scorer = GroupScorer(predictor)
    with pytest.raises(ValueError):
        scorer.predict_proba([customer_record(tenure="not a number")])  # contract-invalid: the pipeline fails
    np.testing.assert_allclose(scorer.predict_proba(_records(2)), predictor.predict_proba(_records(2)))
