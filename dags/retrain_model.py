"""
### Retraining and the promotion gate (`retrain_model`)

Every 5 minutes:

- `sync-registered-versions`: every version of the registered model, with or without an alias
  (`python -m model.train`, this DAG, or registered by hand in MLflow), gets its database row:
  training metrics, threshold, calibration, drift baseline, registry number (read from its
  training run's metadata.json); a version registered by hand also gets the tags our
  registration sets. What could not be read is in the task's result, tried again next run.
- `promotion-gate`: when a challenger exists, judge it against the champion on the settled
  labelled customers both scored since it was registered (the champion served them, the
  challenger scored them in shadow; settled: LABEL_HORIZON_DAYS passed or the window's coverage
  reached SETTLED_MIN_COVERAGE). Promote it (the API switches by itself), reject it with the
  reasons, or leave it in shadow until GATE_MIN_ROWS settled labelled customers are there.
  Aliases move by compare-and-set. Decisions: `promotion_decisions`.
- `retrain-if-needed`: under a PostgreSQL advisory lock (one retraining at a time), when no
  challenger waits, no challenger was rejected in the last RETRAIN_BACKOFF_MINUTES, and
  RETRAIN_MIN_NEW_LABELS new labels arrived since the last retrain attempt or the settled
  realized F1 fell significantly below the training F1: train on the original training split
  plus the settled labelled serving rows (holdout customers left out) and register the result as
  `challenger`. Otherwise the task is **skipped**, saying why.

Logic: `jobs/lifecycle.py` (the same functions as `python -m jobs.lifecycle`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException


@dag(
    dag_id="retrain_model",
    schedule="*/5 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "ml", "retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["churn", "lifecycle"],
    doc_md=__doc__,
)
def retrain_model() -> None:
    @task(task_id="sync-registered-versions")
    def sync_registered_versions() -> dict[str, Any]:
        from jobs import lifecycle

        return lifecycle.sync_registered_versions().as_dict()

    @task(task_id="promotion-gate")
    def promotion_gate_step(_synced: dict[str, Any]) -> dict[str, Any] | None:
        from jobs import lifecycle

        return lifecycle.promotion_gate_step()

    @task(task_id="retrain-if-needed")
    def retrain_if_needed(_gate: dict[str, Any] | None) -> int:
        from jobs import lifecycle

        result = lifecycle.retrain_if_needed()
        if isinstance(result, lifecycle.RetrainCheck):
            raise AirflowSkipException(result.reason)
        return result.number

    retrain_if_needed(promotion_gate_step(sync_registered_versions()))


retrain_model()
