"""The predictions table's partitions kept by the API: at start, then every hour (db/partitions.py).

The API is the one always-running writer of predictions, so it is the scheduled path that keeps
PREDICTIONS_PARTITIONS_AHEAD months of partitions ready and applies PREDICTIONS_RETENTION_DAYS.
A failure (the database down) is logged and tried again at the next round; it never stops the API,
and an insert never fails meanwhile (the default partition takes a row no month covers).
`python -m db.manage partitions` does the same once, for an operator or a cron job.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import SQLAlchemyError

from core.settings import PredictionStorageSettings
from db.manage import maintain_prediction_partitions

log = logging.getLogger(__name__)
MAINTENANCE_INTERVAL_SECONDS = 3600.0


class PartitionKeeper:
    """A daemon thread running the partition maintenance now and every `interval` seconds."""

    def __init__(self, settings: PredictionStorageSettings,
                 interval: float = MAINTENANCE_INTERVAL_SECONDS) -> None:
        self.settings = settings
        self.interval = interval
        self.rounds = 0  # finished rounds, successful or not (tests wait on it)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="partition-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def run_once(self) -> None:
        """One round; a database error is logged, never raised."""
        try:
            report = maintain_prediction_partitions(self.settings)
        except SQLAlchemyError:
            log.exception("predictions partitions not maintained this round; retrying in %.0f s",
                          self.interval)
        else:
            if report.created or report.dropped or report.moved_from_default:
                log.info("predictions partitions: %s", report.summary())
        self.rounds += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)
