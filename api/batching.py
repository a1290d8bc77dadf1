"""Concurrent small requests share one model call (group scoring, like a database's group commit).

Scoring one row costs almost as much as scoring fifty: the pipeline's fixed cost (building the
frame, the column transformer) dominates. Under concurrent one-record requests, each thread
queues its records; whichever thread finds no scoring in progress becomes the leader, scores
everything queued in one call and hands each caller its slice. A request that arrives alone is
scored at once; under traffic the leader first waits 2 ms for the requests in flight to join.
Large requests gain nothing from sharing and are scored directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from model.predictor import Predictor

SHARE_UP_TO_RECORDS = 256  # above this, a request is scored on its own
# Under traffic (a model call ended less than BUSY_SECONDS ago) the leader waits GATHER_SECONDS
# before scoring, so that the requests in flight join its call: with 8 concurrent one-record
# clients, records per call went from 2.5 to 5.4 and the p50 from 48 ms to 26 ms. A request
# arriving alone never waits.
BUSY_SECONDS = 0.05
GATHER_SECONDS = 0.002


class _Job:
    __slots__ = ("error", "lead", "probabilities", "records", "wake")

    def __init__(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.records = records
        self.probabilities: np.ndarray | None = None
        self.error: BaseException | None = None
        self.lead = False  # set when woken to score the queue rather than with a result
        self.wake = threading.Event()


class GroupScorer:
    """`predict_proba` for many threads at once, sharing model calls between small requests."""

    def __init__(
        self,
        predictor: Predictor,
        share_up_to: int = SHARE_UP_TO_RECORDS,
        on_model_call: Callable[[int], None] | None = None,
    ) -> None:
        self.predictor = predictor
        self.share_up_to = share_up_to
        self.on_model_call = on_model_call  # told the number of records of every model call
        self._lock = threading.Lock()
        self._queue: list[_Job] = []
        self._scoring = False
        self._last_call_end = -1e9
        self.calls = 0  # model calls made, for tests and curiosity

    def predict_proba(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Churn probability of each record, in order (same result as Predictor.predict_proba)."""
        if len(records) > self.share_up_to:
            self._count_call(len(records))
            return self.predictor.predict_proba(records)
        job = _Job(records)
        with self._lock:
            self._queue.append(job)
            lead = not self._scoring
            self._scoring = True
        if not lead:
            job.wake.wait()
        if job.lead or lead:
            self._score_queue_until(job)
        if job.error is not None:
            raise job.error
        assert job.probabilities is not None
        return job.probabilities

    def _score_queue_until(self, own: _Job) -> None:
        """Score queued batches until our own job is done, then pass the lead to a waiting job.

        The hand-over is in a `finally`: whatever happens to this thread, no caller waits forever.
        """
        try:
            while own.probabilities is None and own.error is None:
                if time.monotonic() - self._last_call_end < BUSY_SECONDS:
                    time.sleep(GATHER_SECONDS)  # traffic: let the requests in flight join this call
                with self._lock:
                    batch, self._queue = self._queue, []
                self._score(batch)
                self._last_call_end = time.monotonic()
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.wake.set()
                else:
                    self._scoring = False

    def _count_call(self, records: int) -> None:
        self.calls += 1
        if self.on_model_call is not None:
            self.on_model_call(records)

    def _score(self, batch: list[_Job]) -> None:
        records = [record for job in batch for record in job.records]
        try:
            self._count_call(len(records))
            probabilities = self.predictor.predict_proba(records)
        except BaseException as error:  # every caller of the shared call gets the same error
            for job in batch:
                job.error = error
                job.wake.set()
            if not isinstance(error, Exception):
                raise  # KeyboardInterrupt, SystemExit: the callers are told, the thread still stops
            return
        start = 0
        for job in batch:
            job.probabilities = probabilities[start:start + len(job.records)]
            start += len(job.records)
            job.wake.set()
