"""A shift seeded in one segment only is found by that segment's drift test, and not overall."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
from sqlalchemy import text

from db.predictions import create_predictions
from db.session import get_engine, session_scope
from model.contract import FEATURE_NAMES, IDENTIFIER
from model.data import load_dataset
from model.predictor import Predictor
from tests.clock import suite_now

SEGMENT = "contract = Two year"


def _records_with_a_hidden_shift(rows: int) -> list[dict]:
    """Customers sampled from the dataset, then the two-year customers given the highest monthly charges.

    The charges are only handed round (the same values, other owners), so over all rows the
    distribution of monthly_charges is untouched; inside the segment it moved far up.
    """
    frame = load_dataset().sample(rows, random_state=11).reset_index(drop=True)  # distinct customers
    two_year = (frame["contract"] == "Two year").to_numpy()
    charges = np.sort(frame["monthly_charges"].to_numpy())
    shifted = np.empty_like(charges)
    shifted[two_year] = charges[len(charges) - two_year.sum():]
    shifted[~two_year] = np.random.default_rng(3).permutation(charges[: len(charges) - two_year.sum()])
    frame["monthly_charges"] = shifted
    return [
        {k: (None if pd.isna(v) else v) for k, v in record.items()}
        for record in frame[[IDENTIFIER, *FEATURE_NAMES]].to_dict("records")
    ]


def test_a_shift_in_one_segment_only_is_found_in_that_segment(clean_db: str) -> None:
    records = _records_with_a_hidden_shift(3000)
    scored = Predictor().predict(records)
    moment = suite_now() - timedelta(minutes=30)
    with session_scope() as session:
        create_predictions(
            session=session, source="scheduled", records=records, labels=[p.label for p in scored],
            probabilities=[p.probability for p in scored], model_version=Predictor().version,
            file_name="segment-shift.csv", batch_key="segment-shift", created_at=moment,
        )
    window = {"start": moment - timedelta(minutes=1), "end": moment + timedelta(minutes=1)}
    with get_engine().connect() as conn:
        overall = {r.feature: r for r in conn.execute(
            text("SELECT * FROM drift_test(:start, :end)"), window)}
        segment = {r.feature: r for r in conn.execute(
            text("SELECT * FROM drift_test(:start, :end, :segment)"), {**window, "segment": SEGMENT})}
    assert overall["monthly_charges"].window_rows == 3000
    assert overall["monthly_charges"].status == "no drift", overall["monthly_charges"]
    assert overall["monthly_charges"].psi_ratio < 0.5
    assert segment["monthly_charges"].status == "drift"
    assert segment["monthly_charges"].psi_ratio > 10
    assert 500 < segment["monthly_charges"].window_rows < 1000
    # and it moves the model's output for them (the logistic model's weight on the charges)
    assert abs(segment["monthly_charges"].logit_shift) > 0.3
