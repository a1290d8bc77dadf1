"""Real Airflow for the DAG tests: a throwaway AIRFLOW_HOME with a migrated metadata DB, and `run_dag`.

Airflow reads its configuration when `airflow` is first imported, so the environment is set
here, at conftest import time, before any test module of this folder imports Airflow. The
variables come from launcher/airflow_env.py, the same function the local launcher uses. The
metadata DB is SQLite in the temporary home: it is Airflow's own bookkeeping, apart from the
churn database (the `database_url` fixture), which task code uses.

`dag.test()` runs the tasks in this process, so they see DATABASE_URL, API_URL and the other
settings the tests export.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from launcher.airflow_env import REPO_ROOT, airflow_environment

DAGS_FOLDER = REPO_ROOT / "dags"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="churn-airflow-"))
AIRFLOW_ENV = airflow_environment(
    AIRFLOW_HOME,
    DAGS_FOLDER,
    f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    jwt_secret_value="test-only-jwt-secret-shared-by-components",
)

if "airflow" in sys.modules:  # too late: Airflow has read another configuration
    raise RuntimeError("airflow was imported before tests/dags/conftest.py could configure it")
os.environ.update(AIRFLOW_ENV)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata DB, migrated once per session (`airflow db migrate`); returns AIRFLOW_HOME."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env={**os.environ, **AIRFLOW_ENV}, capture_output=True, text=True, timeout=300, check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return AIRFLOW_HOME


def parse_dags() -> Any:
    """Every DAG file of dags/, parsed the way the DAG processor parses them (a fresh DagBag)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


@pytest.fixture
def dag_bag(airflow_db: Path) -> Any:
    return parse_dags()


@dataclass(frozen=True)
class DagRunResult:
    """What a `dag.test()` run ended in: the run's state and each task's state and try number."""

    run_id: str
    state: str
    task_states: dict[str, str]
    try_numbers: dict[str, int]


def _result(dag_run: Any) -> DagRunResult:
    from airflow.utils.session import create_session

    with create_session() as session:
        instances = dag_run.get_task_instances(session=session)
        return DagRunResult(
            run_id=dag_run.run_id,
            state=str(dag_run.state),
            task_states={ti.task_id: str(ti.state) for ti in instances},
            try_numbers={ti.task_id: ti.try_number for ti in instances},
        )


@pytest.fixture
def run_dag(airflow_db: Path) -> Callable[..., DagRunResult]:
    """Run one DAG of dags/ once with `dag.test()`; task attributes can be overridden for speed.

    `run_dag("prediction_job", retry_delay=timedelta(seconds=1))` sets that attribute on every
    task of the run (retries, retry_delay, ...), leaving the DAG file untouched.
    """

    def run(dag_id: str, **task_overrides: Any) -> DagRunResult:
        from airflow.sdk import timezone

        bag = parse_dags()  # a fresh parse: overrides never leak into the next run
        dag = bag.get_dag(dag_id)
        assert dag is not None, f"no DAG {dag_id!r} in {DAGS_FOLDER}: {bag.import_errors}"
        for task in dag.tasks:
            for name, value in task_overrides.items():
                setattr(task, name, value)
        return _result(dag.test(logical_date=timezone.utcnow()))

    return run
