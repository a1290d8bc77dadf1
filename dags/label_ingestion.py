"""
### Outcomes (`label_ingestion`)

Every minute, ingests every label file of **labels/** (`customer_id`, `churn` Yes/No, `known_at`)
and recomputes realized performance.

- `ingest-labels`: per file, one transaction: valid labels stored once per (customer, known_at),
  each joined to the customer's latest prediction made at or before `known_at` (times without an
  offset read in LABELS_TIMEZONE); statistics and notes in `label_files`; invalid and
  contradictory rows set aside in LABELS_BAD_DIR as `<stem>.<sha256[:12]>.csv` with `_row` and
  `_errors` columns; the file moved to `labels/.processed/`. No file: this task is **skipped**.
- `refresh-realized-performance`: runs whether or not a file came (trigger rule `none_failed`), so
  coverage and the `settled` flag stay current: F1, precision, recall, ROC AUC, Brier score and
  coverage with 95 % intervals per model version and window (`realized_performance`, read by
  Grafana).

Rules for outcome times, late, partial, duplicate and contradictory labels: `jobs/labels.py`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException


@dag(
    dag_id="label_ingestion",
    schedule="* * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "ml", "retries": 2, "retry_delay": timedelta(seconds=20)},
    tags=["churn", "lifecycle"],
    doc_md=__doc__,
)
def label_ingestion() -> None:
    @task(task_id="ingest-labels")
    def ingest_waiting_label_files() -> list[dict[str, Any]]:
        from jobs import labels

        reports = labels.ingest_waiting_label_files(dag_run_id=get_current_context()["run_id"])
        if reports is None:
            raise AirflowSkipException("no label file in LABELS_DIR")
        return [report.to_dict() for report in reports]

    # none_failed: also after a skipped ingest (no file), never after a failed one
    @task(task_id="refresh-realized-performance", trigger_rule="none_failed")
    def refresh_realized_performance() -> int:
        from jobs import realized

        return realized.refresh_realized_performance()

    ingest_waiting_label_files() >> refresh_realized_performance()


label_ingestion()
