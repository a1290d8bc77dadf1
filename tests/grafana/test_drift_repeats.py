"""The drift test counts each customer once per window, by their latest row (migration 0010): a
window of customers scored again and again is judged as the customers it holds, not as its rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import joblib
import pandas as pd
import pytest
from sqlalchemy import text

from db.manage import DEFAULT_METADATA, downgrade, migrate
from db.predictions import create_predictions
from db.session import get_engine, session_scope
from model.contract import FEATURE_NAMES, IDENTIFIER
from model.data import load_dataset
from model.monitoring import LogitWeights, drift_tests
from model.predictor import Predictor
from model.train import ARTIFACTS_DIR, MODEL_FILE

WINDOWS_END = datetime(2026, 11, 24, 22, 16, tzinfo=UTC)  # a fixed instant: no wall clock

METADATA = json.loads(DEFAULT_METADATA.read_text()) if DEFAULT_METADATA.exists() else {}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if pd.isna(v) else v) for k, v in record.items()}
            for record in frame[[IDENTIFIER, *FEATURE_NAMES]].to_dict("records")]


def _store(records: list[dict[str, Any]], moment: datetime, key: str) -> None:
    scored = Predictor().predict(records)
    with session_scope() as session:
        create_predictions(
            session=session, source="scheduled", records=records, labels=[p.label for p in scored],
            probabilities=[p.probability for p in scored], model_version=Predictor().version,
            file_name=f"{key}.csv", batch_key=key, created_at=moment,
        )


def _drift(start: datetime, end: datetime, segment: str = "all") -> dict[str, Any]:
    with get_engine().connect() as conn:
        return {r.feature: r for r in conn.execute(
            text("SELECT * FROM drift_test(:start, :end, :segment)"),
            {"start": start, "end": end, "segment": segment})}


def test_a_customer_scored_again_and_again_counts_once(clean_db: str) -> None:
    customers = load_dataset().sample(150, random_state=21)
    start = WINDOWS_END - timedelta(hours=1)
    _store(_records(customers), start, "everyone")
    repeated = _records(customers.iloc[:1])
    for minute in range(1, 61):  # the first customer, once a minute for an hour
        _store(repeated, start + timedelta(minutes=minute), f"again-{minute}")
    anonymous = [{**r, IDENTIFIER: None} for r in _records(customers.iloc[1:21])]  # 20 rows without id
    _store(anonymous, start + timedelta(minutes=2), "anonymous")
    drift = _drift(start, start + timedelta(minutes=61))
    # 150 customers + 20 rows without id (each its own customer), not 150 + 60 + 20 rows
    assert {row.window_rows for row in drift.values()} == {170}


def test_the_latest_row_is_the_one_counted(clean_db: str) -> None:
    customers = load_dataset()
    two_year = customers[customers["contract"] == "Two year"].sample(120, random_state=5)
    start = WINDOWS_END - timedelta(minutes=30)
    _store(_records(two_year), start, "two-year")
    moved = _records(two_year.iloc[:30])
    moved = [{**r, "contract": "Month-to-month"} for r in moved]  # 30 of them change contract later
    _store(moved, start + timedelta(minutes=5), "moved")
    end = start + timedelta(minutes=10)
    assert next(iter(_drift(start, end, "contract = Two year").values())).window_rows == 90
    assert next(iter(_drift(start, end, "contract = Month-to-month").values())).window_rows == 30
    assert next(iter(_drift(start, end).values())).window_rows == 120


def test_a_few_customers_repeated_do_not_alarm_as_many_rows_would(clean_db: str) -> None:
    """150 customers of the data (no drift), each scored 8 times in the window: 1,200 rows.

    Judged as 1,200 independent rows (the test before migration 0010), their chance differences
    from the training data pass the critical value of 1,200 rows; judged as the 150 customers they
    are, they pass nothing.
    """
    customers = load_dataset().sample(150, random_state=8)
    start = WINDOWS_END - timedelta(minutes=40)
    for round_ in range(8):
        _store(_records(customers), start + timedelta(minutes=4 * round_), f"round-{round_}")
    drift = _drift(start, start + timedelta(minutes=30))
    assert {row.window_rows for row in drift.values()} == {150}
    assert {row.status for row in drift.values()} <= {"no drift", "fixed by the segment"}
    weights = LogitWeights.of(joblib.load(ARTIFACTS_DIR / MODEL_FILE))
    rows = pd.concat([customers[list(FEATURE_NAMES)]] * 8, ignore_index=True)
    as_rows = drift_tests(rows, METADATA["monitoring"], METADATA["baseline"], weights)
    assert any(r.status == "drift" for r in as_rows)  # what every-row counting said
    once = drift_tests(customers[list(FEATURE_NAMES)], METADATA["monitoring"], METADATA["baseline"], weights)
    for python in once:  # the SQL on the repeated rows is the Python reference on the customers
        assert drift[python.feature].psi == pytest.approx(python.psi, rel=1e-9, abs=1e-12)


def test_the_downgrade_counts_every_row_again_and_the_upgrade_customers(clean_db: str) -> None:
    customers = load_dataset().sample(120, random_state=3)
    start = WINDOWS_END - timedelta(minutes=20)
    for round_ in range(3):
        _store(_records(customers), start + timedelta(minutes=round_), f"round-{round_}")
    end = start + timedelta(minutes=5)
    downgrade(clean_db, "0009")
    try:
        assert {row.window_rows for row in _drift(start, end).values()} == {360}
    finally:
        migrate(clean_db)
    assert {row.window_rows for row in _drift(start, end).values()} == {120}
