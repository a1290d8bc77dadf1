"""Every DAG file of dags/ imports cleanly in Airflow and follows the house conventions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.dags.conftest import DAGS_FOLDER

DAG_FILES = sorted(DAGS_FOLDER.glob("*.py"))


def test_dag_folder_has_no_import_errors(dag_bag: Any) -> None:
    assert dag_bag.import_errors == {}, "\n".join(
        f"{path}: {error}" for path, error in dag_bag.import_errors.items()
    )


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[path.name for path in DAG_FILES])
def test_each_dag_file_defines_a_dag(dag_bag: Any, dag_file: Path) -> None:
    defined = [dag.dag_id for dag in dag_bag.dags.values() if Path(dag.fileloc) == dag_file]
    assert defined, f"{dag_file.name} defines no DAG (import errors: {dag_bag.import_errors})"


def test_each_dag_is_scheduled_tagged_documented_and_retried(dag_bag: Any) -> None:
    assert dag_bag.dags, f"no DAG found in {DAGS_FOLDER}"
    for dag_id, dag in dag_bag.dags.items():
        assert dag.tags, f"{dag_id}: no tags"
        assert dag.catchup is False, f"{dag_id}: catchup must be False (no backfill storm at start)"
        assert dag.schedule is not None, f"{dag_id}: no schedule (Airflow 3 defaults to None)"
        assert dag.doc_md, f"{dag_id}: no doc_md shown in the UI"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id}: no retries"


def test_prediction_job_checks_then_predicts_every_two_minutes(dag_bag: Any) -> None:
    dag = dag_bag.get_dag("prediction_job")
    assert dag is not None, dag_bag.import_errors
    assert dag.schedule == "*/2 * * * *"
    assert dag.get_task("check_for_new_data").downstream_task_ids == {"make_predictions"}
    assert all(task.retries >= 2 for task in dag.tasks)
