"""The monitoring statistics (model/monitoring.py): the chi-square law of PSI checked by simulation,
the critical values, the exact logit decomposition, the calibration and CBPE."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

from model.contract import FEATURE_NAMES, POSITIVE_LABEL, SEGMENTS, TARGET
from model.data import load_dataset
from model.monitoring import (
    ALL,
    EMPTY_BIN,
    Calibration,
    LogitWeights,
    estimated_performance,
    latest_per_customer,
    psi,
    psi_critical_value,
    realized_performance,
    segment_mask,
    sidak_alpha,
    simulate_null_psi,
)
from model.train import ARTIFACTS_DIR, METADATA_FILE, MODEL_FILE


@pytest.fixture(scope="module")
def metadata() -> dict:
    return json.loads((ARTIFACTS_DIR / METADATA_FILE).read_text())


@pytest.fixture(scope="module")
def dataset() -> pd.DataFrame:
    return load_dataset()


def test_sidak_share_keeps_the_family_rate() -> None:
    alpha = sidak_alpha(0.01, 19)
    assert 1 - (1 - alpha) ** 19 == pytest.approx(0.01)
    assert 0.01 / 19 < alpha < 0.01 / 18  # a hair above Bonferroni
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        sidak_alpha(1.0)


def test_critical_value_is_the_scaled_chi_square_quantile() -> None:
    value = psi_critical_value(window_rows=1000, reference_rows=5634, dof=9, family_rate=0.01)
    law = (1 / 1000 + 1 / 5634) * chi2.isf(sidak_alpha(0.01, 19), 9)
    assert value == pytest.approx(law * (1 + 30 / 1000))
    # the same false-alarm rate needs a ten times higher PSI at a tenth of the rows (window-dominated),
    # and a bit more for the small window's heavier tail (x 1.3 at 100 rows)
    small = psi_critical_value(window_rows=100, reference_rows=5634, dof=9)
    assert 7 * 1.3 / 1.03 < small / value < 10 * 1.3 / 1.03
    with pytest.raises(ValueError, match="dof >= 1"):
        psi_critical_value(window_rows=100, reference_rows=5634, dof=0)


def test_psi_floors_empty_shares() -> None:
    assert psi({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0
    expected = 0.5 * np.log(2) + (0.5 - 1e-4) * np.log(0.5 / 1e-4)  # b: empty in the window, floored
    assert psi({"a": 1.0}, {"a": 0.5, "b": 0.5}) == pytest.approx(expected)


def test_chi_square_law_holds_by_simulation(dataset: pd.DataFrame) -> None:
    """Reference and window drawn from the data (H0): PSI averages (1/n + 1/N)(k - 1) and the family
    false-alarm rate stays at or under its 1 %. bench/monitoring_power.py runs this at more sizes."""
    result = simulate_null_psi(dataset[list(FEATURE_NAMES)], window_rows=1000, reference_rows=5634,
                               replicates=60, seed=4)
    assert 0.85 < result["mean_ratio"] < 1.15
    assert result["family_false_alarm_rate"] <= 2 / 60


def test_logit_decomposition_is_exact(dataset: pd.DataFrame) -> None:
    pipeline = joblib.load(ARTIFACTS_DIR / MODEL_FILE)
    frame = dataset[list(FEATURE_NAMES)]
    weights = LogitWeights.of(pipeline)
    assert np.abs(weights.logit(frame) - pipeline.decision_function(frame)).max() < 1e-9
    # an empty total_charges contributes as the training median, as the imputer fills it
    row = frame[frame["total_charges"].isna()].head(1)
    weight, center, fill = weights.numeric["total_charges"]
    assert weights.contributions(row)["total_charges"].iloc[0] == pytest.approx(weight * (fill - center))


def test_reference_is_stored_per_segment_with_the_empty_bin(metadata: dict) -> None:
    reference = metadata["monitoring"]
    assert set(reference["segments"]) == {ALL, *(s.name for s in SEGMENTS)}
    everyone = reference["segments"][ALL]
    assert everyone["rows"] == metadata["training_rows"]
    assert everyone["churn_rate"] == pytest.approx(metadata["training_churn_rate"], abs=1e-4)
    for feature, ref in everyone["features"].items():
        assert sum(ref["shares"].values()) == pytest.approx(1.0), feature
        assert ref["shares"][EMPTY_BIN] == ref["empty_share"]
    assert 0 < everyone["features"]["total_charges"]["empty_share"] < 0.01
    assert reference["segments"]["contract = Two year"]["features"]["contract"]["shares"]["Two year"] == 1.0


def test_segments_of_the_contract_select_their_rows(dataset: pd.DataFrame) -> None:
    by_name = {s.name: s for s in SEGMENTS}
    assert segment_mask(dataset, by_name["tenure 0-11 months"]).sum() == (dataset["tenure"] < 12).sum()
    assert segment_mask(dataset, by_name["tenure 48+ months"]).sum() == (dataset["tenure"] >= 48).sum()
    assert segment_mask(dataset, by_name["internet service = DSL"]).sum() == (
        dataset["internet_service"] == "DSL").sum()
    assert segment_mask(dataset, by_name["source = webapp"]).all()  # training has no source: all rows
    bands = sum(segment_mask(dataset, s) for s in SEGMENTS if s.dimension == "tenure")
    assert (bands == 1).all()  # the tenure bands cover every customer once


def test_calibration_is_fitted_on_out_of_fold_scores_and_cbpe_matches_the_holdout(
    metadata: dict, dataset: pd.DataFrame,
) -> None:
    calibration = Calibration(**metadata["monitoring"]["calibration"])
    assert calibration.method == "platt" and calibration.rows == metadata["training_rows"]
    assert 0.8 < calibration.slope < 1.2  # a logistic model is nearly calibrated already
    pipeline = joblib.load(ARTIFACTS_DIR / MODEL_FILE)
    scores = pipeline.predict_proba(dataset[list(FEATURE_NAMES)])[:, 1]
    decisions = (scores >= metadata["threshold"]).astype(int)
    outcomes = (dataset[TARGET] == POSITIVE_LABEL).astype(int).to_numpy()
    estimate = estimated_performance(scores, decisions, calibration)
    realized = realized_performance(outcomes, decisions)
    assert estimate["tp"] + estimate["fp"] + estimate["fn"] + estimate["tn"] == pytest.approx(len(scores))
    for key in ("precision", "recall", "f1"):
        assert estimate[key] == pytest.approx(realized[key], abs=0.03), key


def test_latest_per_customer_keeps_each_customers_latest_row_and_every_anonymous_one() -> None:
    frame = pd.DataFrame({
        "id": [1, 2, 3, 4, 5, 6, 7],
        "customer_id": ["a", "b", "a", None, "b", None, "a"],
        "created_at": pd.to_datetime(["2026-01-01 10:00", "2026-01-01 10:00", "2026-01-01 10:05",
                                      "2026-01-01 10:06", "2026-01-01 10:01", "2026-01-01 10:06",
                                      "2026-01-01 10:05"]),
        "tenure": [1, 2, 3, 4, 5, 6, 7],
    }, index=[10, 10, 11, 12, 13, 14, 15])  # a repeated index label does not matter
    latest = latest_per_customer(frame)
    # a: rows 3 and 7 at 10:05, the higher id wins; b: row 5 (10:01); both anonymous rows stay
    assert latest["id"].tolist() == [4, 5, 6, 7]
