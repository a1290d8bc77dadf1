"""
### Data ingestion (`data_ingestion`)

Every minute, takes **one** file from **raw-data**, validates it and sorts its rows.

- `read-data`: removes writers' orphan temporaries, recovers claims left by crashed runs, then
  claims one file at random among those unchanged for `RAW_FILE_SETTLE_SECONDS` (atomic rename
  into `raw-data/.claims/`). Nothing to claim: the run is **skipped**.
- `validate-data`: the file read by the one reader of customer files (`core/reader.py`:
  encoding, delimiter, aliases, field counts), then the Great Expectations suite generated from
  the feature contract: each row valid or invalid with its reasons (error type, column), and the
  file's criticality.
- `save-statistics`: one `ingested_files` row, one `ingestion_errors` row per (error type,
  column). Never the rows.
- `send-alerts`: builds the Data Docs report served under `/reports/`; when the file has
  problems, posts an Adaptive Card to Teams (`TEAMS_WEBHOOK_URL`; unset: logged, not sent).
- `split-and-save-data`: valid rows to **good_data**, invalid rows with an `_errors` column to
  **bad_data**, named `<file>.<checksum>.csv`; an unreadable file goes to bad_data unchanged.

The last three run in parallel: a Teams outage fails `send-alerts` only. The claimed file is
released only once its statistics are stored and its rows split: with the database down, it stays
claimed and a later run ingests it again (one statistics row, the same outputs). The file is read
`INGESTION_CHUNK_ROWS` rows at a time. The logic lives in
`jobs/` (`claim`, `validation`, `alerts`, `splitting`, `ingestion`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException


def _run_id() -> str:
    return str(get_current_context()["run_id"])


@dag(
    dag_id="data_ingestion",
    schedule="* * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"owner": "data-ops", "retries": 1, "retry_delay": timedelta(seconds=20)},
    tags=["churn", "ingestion"],
    doc_md=__doc__,
)
def data_ingestion() -> None:
    # imports inside the tasks: the DAG processor parses this file often; pandas and Great
    # Expectations stay out of parsing

    @task(task_id="read-data")
    def claim_next_file() -> dict[str, Any]:
        from jobs import ingestion

        claim = ingestion.claim_next_file(_run_id())
        if claim is None:
            raise AirflowSkipException("raw-data holds no file to ingest")
        return claim

    @task(task_id="validate-data")
    def validate_claimed_file(claim: dict[str, Any]) -> dict[str, Any]:
        from jobs import ingestion

        return ingestion.validate_claimed_file(claim)

    @task(task_id="save-statistics")
    def save_ingestion_statistics(validated: dict[str, Any]) -> int:
        from jobs import ingestion

        return ingestion.save_ingestion_statistics(validated, _run_id())

    @task(task_id="send-alerts")
    def send_file_alerts(validated: dict[str, Any]) -> dict[str, Any]:
        from jobs import ingestion

        return ingestion.send_file_alerts(validated, _run_id())

    @task(task_id="split-and-save-data")
    def split_and_save_rows(validated: dict[str, Any]) -> dict[str, Any]:
        from jobs import ingestion

        return ingestion.split_and_save_rows(validated)

    validated = validate_claimed_file(claim_next_file())
    save_ingestion_statistics(validated)
    send_file_alerts(validated)
    split_and_save_rows(validated)


data_ingestion()
