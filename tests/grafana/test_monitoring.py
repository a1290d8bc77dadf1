"""The monitoring SQL of migration 0008 agrees with its Python reference (model/monitoring.py) on the
demo history, as Grafana's read-only role runs it: drift tests, empty values, CBPE, segments."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import joblib
import numpy as np
import pandas as pd
import psycopg
import pytest

from db.manage import DEFAULT_METADATA
from model.contract import FEATURE_NAMES, SEGMENTS
from model.monitoring import (
    ALL,
    Calibration,
    LogitWeights,
    drift_tests,
    estimated_performance,
    latest_per_customer,
    segment_mask,
)
from model.train import ARTIFACTS_DIR, MODEL_FILE
from scripts.seed_demo_history import EMPTIED_FEATURE
from tests.grafana.conftest import DemoDatabase

METADATA = json.loads(DEFAULT_METADATA.read_text()) if DEFAULT_METADATA.exists() else {}


def window_frame(
    conn: psycopg.Connection, start: datetime, end: datetime, *, latest: bool = False,
) -> pd.DataFrame:
    """The predictions of [start, end] as the model's input frame, plus source, ids and stored outputs;
    `latest`: each customer's latest row only (what the drift test reads)."""
    cursor = conn.execute(
        f"SELECT id, customer_id, created_at, source, predicted_label, churn_probability, "
        f"{', '.join(FEATURE_NAMES)} FROM predictions WHERE created_at BETWEEN %s AND %s", (start, end))
    frame = pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])
    return latest_per_customer(frame) if latest else frame


def sql_drift(conn: psycopg.Connection, start: datetime, end: datetime, segment: str = ALL) -> dict[str, Any]:
    cursor = conn.execute("SELECT * FROM drift_test(%s, %s, %s)", (start, end, segment))
    names = [c.name for c in cursor.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def in_segment(frame: pd.DataFrame, segment: str) -> pd.DataFrame:
    if segment == ALL:
        return frame
    (chosen,) = [s for s in SEGMENTS if s.name == segment]
    return frame[segment_mask(frame, chosen)]


WINDOWS = {  # name -> (start, end) from the demo timeline
    "drift hour": lambda t: t.drift,
    "healthy 30 minutes": lambda t: (
        t.bad_data[0] - timedelta(minutes=35), t.bad_data[0] - timedelta(minutes=5)),
    "empty values": lambda t: t.empty_values,
    "three minutes": lambda t: (t.drift[0] - timedelta(minutes=3), t.drift[0]),
}


@pytest.mark.parametrize("segment", [ALL, "contract = Two year", "tenure 0-11 months", "source = webapp"])
@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_drift_test_sql_matches_the_python_reference(
    window: str, segment: str, demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    start, end = WINDOWS[window](demo_db.timeline)
    sql = sql_drift(reader, start, end, segment)
    frame = in_segment(window_frame(reader, start, end, latest=True), segment)
    weights = LogitWeights.of(joblib.load(ARTIFACTS_DIR / MODEL_FILE))
    python = drift_tests(frame, METADATA["monitoring"], METADATA["baseline"], weights, segment=segment)
    assert set(sql) == set(FEATURE_NAMES)
    for expected in python:
        got = sql[expected.feature]
        assert got["window_rows"] == len(frame)
        assert got["status"] == expected.status, expected.feature
        for key in ("empty_share", "psi", "critical_value", "psi_ratio", "logit_shift"):
            want = getattr(expected, key)
            if want is None:
                assert got[key] is None, (expected.feature, key)
            else:
                assert got[key] == pytest.approx(want, rel=1e-9, abs=1e-12), (expected.feature, key)


def test_drift_hour_flags_the_promoted_features_and_ranks_them_by_logit_shift(
    demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    sql = sql_drift(reader, *demo_db.timeline.drift)
    drifted = {f for f, row in sql.items() if row["status"] == "drift"}
    assert {"contract", "tenure", "payment_method", "internet_service"} <= drifted
    assert "female" not in drifted  # fiber customers are as often women as the others
    # each ratio means the same at any size: above 1 is beyond the false-alarm rate
    assert all(row["psi_ratio"] > 1 for f, row in sql.items() if f in drifted)
    ranked = sorted(drifted, key=lambda f: -abs(sql[f]["logit_shift"]))
    assert ranked[0] in {"tenure", "contract"}  # the newcomers' days of tenure and monthly contracts


@pytest.mark.parametrize("segment", [ALL, "internet service = DSL", "tenure 48+ months"])
def test_logit_shifts_add_up_to_the_change_of_the_mean_logit(
    segment: str, demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    """Exact for the logistic model: the mean stored logit moved by the sum of the feature shifts."""
    start, end = demo_db.timeline.drift[0] - timedelta(minutes=30), demo_db.timeline.drift[1]
    shifts = sum(row["logit_shift"] for row in sql_drift(reader, start, end, segment).values())
    frame = in_segment(window_frame(reader, start, end, latest=True), segment)
    logits = np.log(frame["churn_probability"] / (1 - frame["churn_probability"]))
    reference = METADATA["monitoring"]["segments"][segment]["mean_logit"]
    # the stored probabilities come from ONNX Runtime, in float32: exact up to its 1e-7 rounding
    assert shifts == pytest.approx(logits.mean() - reference, abs=1e-5)


def test_small_windows_say_so_instead_of_a_verdict(demo_db: DemoDatabase, reader: psycopg.Connection) -> None:
    # one webapp request (1-3 rows; scheduled batches are stored at second 20)
    (moment,) = reader.execute(
        "SELECT min(created_at) FROM predictions "
        "WHERE source = 'webapp' AND extract(second FROM created_at) <> 20"
    ).fetchone()
    sql = sql_drift(reader, moment, moment)
    assert 0 < next(iter(sql.values()))["window_rows"] < 100
    assert {row["status"] for row in sql.values()} == {"too few rows"}
    assert all(row["psi_ratio"] is None and row["critical_value"] is None for row in sql.values())


def test_a_segment_fixing_a_feature_does_not_test_it(
    demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    sql = sql_drift(reader, *demo_db.timeline.drift, "internet service = No")
    # without internet every add-on is "No internet service": nothing to compare
    assert sql["online_security"]["status"] == sql["internet_service"]["status"] == "fixed by the segment"


def test_an_unknown_segment_is_refused_naming_the_choices(reader: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.RaiseException, match=r'unknown segment "contract = Weekly".*Two year'):
        reader.execute("SELECT * FROM drift_test(now() - interval '1 hour', now(), 'contract = Weekly')")


def test_the_empty_bin_counts_in_psi_and_in_the_empty_shares(
    demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    """The empty-values episode: total_charges empty in every row, which PSI once skipped."""
    start, end = demo_db.timeline.empty_values
    start += timedelta(minutes=3)  # files ingested before the episode are scored up to 2m20s into it
    drift = sql_drift(reader, start, end)
    assert drift[EMPTIED_FEATURE]["empty_share"] == 1.0
    assert drift[EMPTIED_FEATURE]["status"] == "drift"
    cursor = reader.execute("SELECT * FROM feature_empty_shares(%s, %s)", (start, end))
    names = [c.name for c in cursor.description]
    shares = {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    assert shares[EMPTIED_FEATURE]["counted_at"] == "predictions"
    assert shares[EMPTIED_FEATURE]["status"] == "mostly empty"
    assert shares[EMPTIED_FEATURE]["alert_ratio"] == pytest.approx(1 / 0.5)
    assert shares[EMPTIED_FEATURE]["training_empty_share"] < 0.01
    assert shares["tenure"]["counted_at"] == "ingestion" and shares["tenure"]["status"] == "ok"


def test_required_features_arriving_empty_are_counted_at_ingestion(
    demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    start, end = demo_db.timeline.start, demo_db.timeline.end
    expected: dict[str, int] = dict(reader.execute(
        "SELECT e.column_name, sum(e.count) FROM ingestion_errors e "
        "JOIN ingested_files f ON f.id = e.ingested_file_id "
        "WHERE e.error_type IN ('missing_value', 'missing_column') AND f.ingested_at BETWEEN %s AND %s "
        "GROUP BY 1", (start, end)).fetchall())
    rows = reader.execute("SELECT sum(rows) FROM ingested_files WHERE ingested_at BETWEEN %s AND %s",
                          (start, end)).fetchone()[0]
    got = {row[0]: row for row in reader.execute(
        "SELECT feature, window_rows, empty_rows FROM feature_empty_shares(%s, %s) "
        "WHERE counted_at = 'ingestion'",
        (start, end))}
    assert expected and set(expected) <= set(got)
    for column, empty in expected.items():
        assert got[column][1:] == (rows, empty)


@pytest.mark.parametrize("segment", [ALL, "contract = Month-to-month", "source = scheduled"])
@pytest.mark.parametrize("window", ["drift hour", "healthy 30 minutes"])
def test_estimated_performance_sql_matches_the_python_reference(
    window: str, segment: str, demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    start, end = WINDOWS[window](demo_db.timeline)
    cursor = reader.execute("SELECT * FROM estimated_performance(%s, %s, %s)", (start, end, segment))
    (row,) = cursor.fetchall()
    got = dict(zip([c.name for c in cursor.description], row, strict=True))
    frame = in_segment(window_frame(reader, start, end), segment)
    calibration = Calibration(**METADATA["monitoring"]["calibration"])
    expected = estimated_performance(
        frame["churn_probability"].to_numpy(), frame["predicted_label"].to_numpy(), calibration)
    assert got["status"] == "estimated" and got["estimated_rows"] == len(frame)
    for key in ("tp", "fp", "fn", "tn"):
        assert got[f"expected_{key}"] == pytest.approx(expected[key], rel=1e-9)
    for key in ("precision", "recall", "f1"):
        assert got[f"estimated_{key}"] == pytest.approx(expected[key], rel=1e-9)


def test_estimated_f1_moves_in_the_drift_hour_before_any_label(
    demo_db: DemoDatabase, reader: psycopg.Connection,
) -> None:
    """No outcome is known during the demo; the estimate alone says the model's behaviour changed."""
    def estimate(start: datetime, end: datetime) -> dict[str, float]:
        cursor = reader.execute("SELECT * FROM estimated_performance(%s, %s)", (start, end))
        return dict(zip([c.name for c in cursor.description], cursor.fetchone(), strict=True))

    healthy = estimate(*WINDOWS["healthy 30 minutes"](demo_db.timeline))
    drift_start = demo_db.timeline.drift[0]
    early = estimate(drift_start, drift_start + timedelta(minutes=10))
    assert abs(healthy["estimated_f1"] - METADATA["metrics"]["f1"]) < 0.08  # healthy: near the holdout F1
    # ten minutes into the promotion every newcomer is flagged: all the likely churners are caught
    # (recall near 1) and, as they are likely churners indeed, precision and F1 rise
    assert early["predicted_positive_rate"] > 0.9 and early["estimated_recall"] > 0.95
    assert early["estimated_f1"] > healthy["estimated_f1"] + 0.05
