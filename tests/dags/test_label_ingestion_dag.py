"""The label_ingestion DAG with real Airflow (dag.test()) on the test database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from db import predictions as stored_predictions
from db import session as db_session
from jobs.splitting import output_name
from tests.factories import customer_record


def test_label_files_are_stored_joined_and_scored(
    clean_db: str, run_dag: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    labels_dir, bad_dir = tmp_path / "labels", tmp_path / "bad"
    labels_dir.mkdir()
    monkeypatch.setenv("LABELS_DIR", str(labels_dir))
    monkeypatch.setenv("LABELS_BAD_DIR", str(bad_dir))
    made = datetime.now(UTC) - timedelta(minutes=30)
    with db_session.session_scope() as session:
        for i in range(4):
            stored_predictions.create_predictions(
                session=session, source="scheduled", records=[customer_record(customer_id=f"C{i}")],
                labels=[i % 2], probabilities=[0.8 if i % 2 else 0.1], model_version="v-dag", created_at=made)
    known = (made + timedelta(minutes=10)).isoformat()
    content = f"customer_id,churn,known_at\nC0,No,{known}\nC1,Yes,{known}\nC2,Yes,{known}\nC3,maybe,{known}\n"
    (labels_dir / "outcomes_1.csv").write_text(content)
    result = run_dag("label_ingestion")
    assert result.state == "success", result
    assert result.task_states == {"ingest-labels": "success", "refresh-realized-performance": "success"}
    with db_session.get_engine().connect() as connection:
        stored = connection.execute(
            text("SELECT count(*) FROM labels WHERE prediction_id IS NOT NULL")).scalar()
        window = connection.execute(text("SELECT labelled, predictions, f1 FROM realized_performance")).one()
    assert stored == 3
    assert (window.labelled, window.predictions) == (3, 4)
    assert window.f1 == pytest.approx(2 / 3)  # C1 right, C2 missed: precision 1, recall 1/2
    bad_name = output_name("outcomes_1.csv", content.encode())
    assert (bad_dir / bad_name).read_text().splitlines()[1].endswith("unknown_category:churn")
    assert not (labels_dir / "outcomes_1.csv").exists()
    nothing = run_dag("label_ingestion")
    assert nothing.task_states == {"ingest-labels": "skipped", "refresh-realized-performance": "success"}


def test_the_realized_refresh_runs_when_no_label_file_came_and_blank_lines_lose_no_row(
    clean_db: str, run_dag: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file with blank lines and a row contradicting a stored label: every row stored or set
    aside under its own line number. Then predictions arrive with no label file: the skipped
    ingest still lets the refresh run, so coverage falls as it truly does (0.5 -> 0.25)."""
    labels_dir, bad_dir = tmp_path / "labels", tmp_path / "bad"
    labels_dir.mkdir()
    monkeypatch.setenv("LABELS_DIR", str(labels_dir))
    monkeypatch.setenv("LABELS_BAD_DIR", str(bad_dir))
    made = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    def predict(customers: list[str]) -> None:
        with db_session.session_scope() as session:
            for customer in customers:
                stored_predictions.create_predictions(
                    session=session, source="scheduled", records=[customer_record(customer_id=customer)],
                    labels=[1], probabilities=[0.8], model_version="v-dag", created_at=made)

    predict(["K1", "K2", "K3", "K4"])
    known = (made + timedelta(seconds=1)).isoformat()
    (labels_dir / "a.csv").write_text(f"customer_id,churn,known_at\nK1,Yes,{known}\n")
    content = f"customer_id,churn,known_at\n\nK2,No,{known}\n\n\nK1,No,{known}\nK3,maybe,{known}\n"
    (labels_dir / "b.csv").write_text(content)
    assert run_dag("label_ingestion").task_states == {
        "ingest-labels": "success", "refresh-realized-performance": "success"}
    bad = (bad_dir / output_name("b.csv", content.encode())).read_text().splitlines()
    assert [line.split(",")[0] for line in bad[1:]] == ["K1", "K3"]
    assert bad[1].endswith(",6,,,contradictory_label:churn (stored label: Yes)")
    assert bad[2].endswith(",7,,,unknown_category:churn")
    query = text("SELECT labelled, predictions, coverage, settled FROM realized_performance")
    with db_session.get_engine().connect() as connection:
        assert tuple(connection.execute(query).one()) == (2, 4, 0.5, False)
    predict(["K5", "K6", "K7", "K8"])
    quiet = run_dag("label_ingestion")
    assert quiet.task_states == {"ingest-labels": "skipped", "refresh-realized-performance": "success"}
    with db_session.get_engine().connect() as connection:
        assert tuple(connection.execute(query).one()) == (2, 8, 0.25, False)
