"""
### Scheduled predictions (`prediction_job`)

Every 2 minutes, scores the files that ingestion put in **good_data** and that were never
predicted, through the model service (`POST /predict`, `source=scheduled`).

- `check_for_new_data` lists the good_data files whose name and SHA-256 the ledger
  (`predicted_files`) does not hold. None: the run is **skipped** (every task shows skipped).
- `make_predictions` sends each file's rows in chunks, each with an idempotency key
  (`<file>:<checksum>:<chunk>`), and enters the file in the ledger only once the API stored all
  of them. The API down or failing: the task **fails** and retries; a retry stores no row twice.
  Rows that cannot be predicted (unreadable, or refused by the API naming the row) are set aside
  with their reasons in **bad_data** (`<file>.<checksum>.refused.csv`) and never block the file;
  only a refusal naming no row (a wrong token) fails the task at once, after the other files.

Files in good_data are only read. The logic lives in `jobs/prediction.py`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException


@dag(
    dag_id="prediction_job",
    schedule="*/2 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # one run at a time: two overlapping runs would only replay each other's chunks
    max_active_runs=1,
    default_args={"owner": "ml", "retries": 3, "retry_delay": timedelta(seconds=20)},
    tags=["churn", "predictions"],
    doc_md=__doc__,
)
def prediction_job() -> None:
    @task
    def check_for_new_data() -> list[dict[str, str]]:
        # imported here: the DAG processor parses this file often, pandas and SQLAlchemy stay out
        from jobs import prediction

        files = prediction.check_for_new_data()
        if not files:
            raise AirflowSkipException("no new file in good_data")
        return files

    @task
    def make_predictions(files: list[dict[str, str]]) -> int:
        from jobs import prediction

        try:
            return prediction.make_predictions(files)
        except prediction.FilesNotPredictedError as error:
            # a bad file stays bad: fail now, without retries; the next run lists it again
            raise AirflowFailException(str(error)) from error

    make_predictions(check_for_new_data())


prediction_job()
