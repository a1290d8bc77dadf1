"""The drift SQL agrees with a Python reference; the demo-history command writes and removes its own rows."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select, text

from core.settings import REPO_ROOT
from db.manage import DEFAULT_METADATA
from db.models import IngestedFile, Prediction, PredictionBatch
from db.predictions import create_predictions
from db.session import get_engine, session_scope
from db.statistics import record_ingestion_statistics
from model.contract import FEATURES, default_record
from scripts.seed_demo_history import DEMO_BATCH_PREFIX, DEMO_RUN_ID
from tests.clock import suite_now
from tests.grafana.conftest import DemoDatabase

EPSILON = 1e-4


def reference_psi(values: list, stats: dict) -> float:
    """PSI as model/baseline.py bins: searchsorted over inner edges; categories by text; empty values
    in a bin of their own (training share: null_share, none for categories); eps for empty bins."""
    present = [v for v in values if v is not None]
    empty_share = stats.get("null_share", 0.0)
    if stats["kind"] == "numeric":
        inner = np.asarray(stats["bin_edges"][1:-1])
        bins = np.searchsorted(inner, np.asarray(present, dtype=float), side="right")
        observed = {str(b): c for b, c in zip(*np.unique(bins, return_counts=True), strict=True)}
        expected = {str(i): p * (1 - empty_share) for i, p in enumerate(stats["bin_proportions"])}
    else:
        keys, counts = np.unique([str(v) for v in present], return_counts=True)
        observed = dict(zip(keys.tolist(), counts.tolist(), strict=True))
        expected = dict(stats["proportions"])
    observed["(empty)"], expected["(empty)"] = len(values) - len(present), empty_share
    total = len(values)
    psi = 0.0
    for key in set(observed) | set(expected):
        actual = max(observed.get(key, 0) / total, EPSILON)
        base = max(expected.get(key, 0.0), EPSILON)
        psi += (actual - base) * math.log(actual / base)
    return psi


def test_psi_sql_matches_the_python_reference(demo_db: DemoDatabase) -> None:
    baseline = json.loads(DEFAULT_METADATA.read_text())["baseline"]
    start, end = demo_db.timeline.drift[0] - timedelta(minutes=30), demo_db.timeline.drift[1]
    with get_engine().connect() as conn:
        sql_psi = {row.feature: row for row in conn.execute(
            text("SELECT * FROM drift_psi(:start, :end)"), {"start": start, "end": end})}
        columns = ", ".join(f.name for f in FEATURES)
        rows = conn.execute(  # each customer's latest row of the window (rows without id: each one)
            text(f"SELECT DISTINCT ON (customer_id, CASE WHEN customer_id IS NULL THEN id END) {columns} "
                 "FROM predictions WHERE created_at BETWEEN :start AND :end "
                 "ORDER BY customer_id, CASE WHEN customer_id IS NULL THEN id END, created_at DESC, id DESC"),
            {"start": start, "end": end},
        ).all()
    assert len(rows) > 1000
    assert set(sql_psi) == {f.name for f in FEATURES}
    for i, feature in enumerate(FEATURES):
        values = [row[i] for row in rows]
        expected = reference_psi(values, baseline[feature.name])
        assert sql_psi[feature.name].psi == pytest.approx(expected, rel=1e-9, abs=1e-12), feature.name
        assert sql_psi[feature.name].serving_rows == len(values)  # empty values count, in their own bin


def test_feature_means_match_the_data(demo_db: DemoDatabase) -> None:
    baseline = json.loads(DEFAULT_METADATA.read_text())["baseline"]
    start, end = demo_db.timeline.drift
    with get_engine().connect() as conn:
        means = {row.feature: row for row in conn.execute(
            text("SELECT * FROM drift_feature_means(:start, :end)"), {"start": start, "end": end})}
        tenure = conn.execute(
            text("SELECT avg(tenure) FROM predictions WHERE created_at BETWEEN :start AND :end"),
            {"start": start, "end": end},
        ).scalar_one()
    assert set(means) == {f.name for f in FEATURES if f.is_numeric}
    assert means["tenure"].serving_mean == pytest.approx(float(tenure))
    assert means["tenure"].training_mean == pytest.approx(baseline["tenure"]["mean"])
    assert means["tenure"].shift_in_std < -1  # the promotion's newcomers: days of tenure, not years


def _keep_one_real_file_and_prediction() -> None:
    """Rows that are not the demo's: --remove must leave them alone."""
    with session_scope() as session:
        record_ingestion_statistics(
            session=session, file_name="real.csv", dag_run_id="scheduled__real", started_at=suite_now(),
            rows=10, valid_rows=10, invalid_rows=0, criticality="none", outcome="good", report_url=None,
            alert_sent=None, error_counts={},
        )
        create_predictions(
            session=session, source="webapp", records=[default_record()], labels=[0], probabilities=[0.1],
            model_version="churn-lr-test", batch_key="real-batch",
        )


def _counts() -> dict[str, int]:
    with session_scope() as session:
        return {
            "demo files": session.scalar(select(func.count()).where(IngestedFile.dag_run_id == DEMO_RUN_ID)),
            "files": session.scalar(select(func.count()).select_from(IngestedFile)),
            "demo predictions": session.scalar(
                select(func.count()).where(Prediction.batch_key.startswith(DEMO_BATCH_PREFIX))),
            "predictions": session.scalar(select(func.count()).select_from(Prediction)),
            "demo batches": session.scalar(
                select(func.count()).where(PredictionBatch.batch_key.startswith(DEMO_BATCH_PREFIX))),
            "batches": session.scalar(select(func.count()).select_from(PredictionBatch)),
        }


def _command(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "scripts.seed_demo_history", *args], cwd=REPO_ROOT,
        env={**os.environ}, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_command_writes_marked_history_and_remove_deletes_exactly_it(demo_db: DemoDatabase) -> None:
    """Runs last in this module: it replaces the module's demo history (the fixture is done with it)."""
    _keep_one_real_file_and_prediction()
    out = _command("--hours", "4")
    counts = _counts()
    assert "wrote 4 hours of demo history" in out
    # 4 hours a file a minute, minus the 12-minute outage; replaced, not added to the 6 earlier hours
    assert counts["demo files"] == 4 * 60 - 12 == counts["files"] - 1
    assert counts["demo predictions"] == counts["predictions"] - 1 > 3000
    assert counts["demo batches"] == counts["batches"] - 1
    out = _command("--remove")
    assert f"{counts['demo files']} ingested files, {counts['demo predictions']} predictions" in out
    assert _counts() == {"demo files": 0, "files": 1, "demo predictions": 0, "predictions": 1,
                         "demo batches": 0, "batches": 1}


def test_command_refuses_a_history_too_short_for_the_incidents() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scripts.seed_demo_history", "--hours", "1"], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2 and "--hours must be at least 4" in result.stderr
