"""Realized performance per version and window equals scikit-learn's on the same joined rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, f1_score, precision_score, recall_score, roc_auc_score
from sqlalchemy import text

from core.settings import LabelSettings, RealizedPerformanceSettings
from db import predictions as stored_predictions
from db import session as db_session
from jobs.labels import ingest_label_file
from jobs.realized import refresh_realized_performance
from tests.factories import customer_record

START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _seed(n: int, version: str, start: datetime, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    customers = [f"{version}-{i}" for i in range(n)]
    probabilities = rng.random(n)
    with db_session.session_scope() as session:
        for i, customer in enumerate(customers):
            stored_predictions.create_predictions(
                session=session, source="scheduled", records=[customer_record(customer_id=customer)],
                labels=[int(probabilities[i] >= 0.5)], probabilities=[float(probabilities[i])],
                model_version=version, created_at=start + timedelta(seconds=i))
    outcomes = (rng.random(n) < probabilities * 0.8 + 0.1).astype(int)
    return customers, outcomes


def test_realized_metrics_equal_scikit_learn(clean_db: str, tmp_path: Path) -> None:
    customers, outcomes = _seed(300, "v-a", START, 1)
    labelled = 240  # partial: 80 % coverage
    lines = [f"{c},{'Yes' if y else 'No'},{(START + timedelta(hours=5)).isoformat()}"
             for c, y in zip(customers[:labelled], outcomes[:labelled], strict=True)]
    settings = LabelSettings(labels_dir=tmp_path, labels_bad_dir=tmp_path / "bad")
    (tmp_path / "labels.csv").write_text("customer_id,churn,known_at\n" + "\n".join(lines) + "\n")
    assert ingest_label_file(tmp_path / "labels.csv", settings=settings).matched == labelled
    assert refresh_realized_performance(RealizedPerformanceSettings(realized_window_minutes=60)) == 1
    with db_session.get_engine().connect() as connection:
        row = connection.execute(text("SELECT * FROM realized_performance")).mappings().one()
        joined = connection.execute(text(
            "SELECT l.churn, p.predicted_label, p.churn_probability FROM labels l "
            "JOIN predictions p ON p.id = l.prediction_id ORDER BY p.id")).all()
    y, label, probability = (np.array(column) for column in zip(*joined, strict=True))
    assert row["model_version"] == "v-a" and row["window_start"] == START
    assert (row["predictions"], row["labelled"]) == (300, labelled)
    assert row["coverage"] == pytest.approx(0.8)
    assert row["f1"] == pytest.approx(f1_score(y, label))
    assert row["precision"] == pytest.approx(precision_score(y, label))
    assert row["recall"] == pytest.approx(recall_score(y, label))
    assert row["roc_auc"] == pytest.approx(roc_auc_score(y, probability))
    assert row["brier"] == pytest.approx(brier_score_loss(y, probability))
    assert row["f1_low"] <= row["f1"] <= row["f1_high"]
    assert row["recall_low"] <= row["recall"] <= row["recall_high"]


def test_windows_split_by_version_and_time_and_late_labels_revise_them(clean_db: str, tmp_path: Path) -> None:
    first, y1 = _seed(50, "v-a", START, 2)
    second, y2 = _seed(50, "v-b", START + timedelta(hours=2), 3)
    settings = LabelSettings(labels_dir=tmp_path, labels_bad_dir=tmp_path / "bad")
    known = (START + timedelta(days=1)).isoformat()
    (tmp_path / "a.csv").write_text("customer_id,churn,known_at\n" + "".join(
        f"{c},{'Yes' if y else 'No'},{known}\n" for c, y in zip(first, y1, strict=True)))
    ingest_label_file(tmp_path / "a.csv", settings=settings)
    assert refresh_realized_performance(RealizedPerformanceSettings(realized_window_minutes=60)) == 2
    with db_session.get_engine().connect() as connection:
        windows = connection.execute(text(
            "SELECT model_version, labelled, f1 FROM realized_performance ORDER BY window_start")).all()
    assert [(v, n) for v, n, _ in windows] == [("v-a", 50), ("v-b", 0)]
    assert windows[1][2] is None  # no label yet: no F1, not a zero
    # late labels of the second version arrive a day later: its window is revised
    (tmp_path / "b.csv").write_text("customer_id,churn,known_at\n" + "".join(
        f"{c},{'Yes' if y else 'No'},{known}\n" for c, y in zip(second, y2, strict=True)))
    ingest_label_file(tmp_path / "b.csv", settings=settings)
    refresh_realized_performance(RealizedPerformanceSettings(realized_window_minutes=60))
    with db_session.get_engine().connect() as connection:
        revised = connection.execute(text(
            "SELECT labelled FROM realized_performance WHERE model_version = 'v-b'")).scalar_one()
    assert revised == 50
