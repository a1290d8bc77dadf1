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
    (labels_dir / "outcomes_1.csv").write_text(
        f"customer_id,churn,known_at\nC0,No,{known}\nC1,Yes,{known}\nC2,Yes,{known}\nC3,maybe,{known}\n")
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
    assert (bad_dir / "outcomes_1.csv").read_text().splitlines()[1].endswith("unknown_category:churn")
    assert not (labels_dir / "outcomes_1.csv").exists()
    nothing = run_dag("label_ingestion")
    assert nothing.task_states["ingest-labels"] == "skipped"
