"""Tables and chart data built from the API's answers."""

from __future__ import annotations

from datetime import date

from webapp.results import (
    churn_share,
    history_frame,
    prediction_frame,
    predictions_over_time,
    probability_histogram,
    reasons_frame,
    with_bucket_labels,
)


def test_prediction_frame_has_row_label_probability_and_features() -> None:
    frame = prediction_frame(
        [{"label": 1, "churn_probability": 0.8, "customer_id": "C1", "features": {"tenure": 2}}], rows=[5],
    )
    assert frame.to_dict("records") == [
        {"row": 5, "customer_id": "C1", "prediction": "Churn", "churn_probability": 0.8, "tenure": 2},
    ]


def test_churn_share() -> None:
    assert churn_share([{"label": 1}, {"label": 0}, {"label": 0}, {"label": 1}]) == 0.5
    assert churn_share([]) is None


def test_probability_histogram_has_every_band_and_puts_1_in_the_last() -> None:
    histogram = probability_histogram([0.0, 0.05, 0.15, 0.99, 1.0])
    assert len(histogram) == 10
    assert histogram["customers"].tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert histogram.index[0] == "0.0-0.1"


def test_predictions_over_time_counts_per_day_and_source_with_gaps() -> None:
    items = [
        {"created_at": "2026-11-20T10:00:00+00:00", "source": "webapp"},
        {"created_at": "2026-11-20T23:30:00-01:00", "source": "scheduled"},  # 21 Nov in UTC
        {"created_at": "2026-11-22T01:00:00+00:00", "source": "scheduled"},
    ]
    frame = predictions_over_time(items, date(2026, 11, 19), date(2026, 11, 22), ["webapp", "scheduled"])
    assert frame["webapp"].tolist() == [0, 1, 0, 0]
    assert frame["scheduled"].tolist() == [0, 0, 1, 1]


def test_predictions_over_time_is_hourly_for_a_short_range() -> None:
    items = [{"created_at": "2026-11-20T10:15:00+00:00", "source": "webapp"}]
    frame = predictions_over_time(items, date(2026, 11, 20), date(2026, 11, 20), ["webapp"])
    assert len(frame) == 24 and frame["webapp"].sum() == 1 and frame["webapp"].iloc[10] == 1


def test_history_frame_shows_time_in_utc_source_and_label_word() -> None:
    frame = history_frame([{
        "created_at": "2026-11-20T12:00:00+01:00", "source": "scheduled", "label": 0,
        "churn_probability": 0.1, "customer_id": None, "file_name": "f.csv", "model_version": "v1",
        "features": {"tenure": 3},
    }])
    line = frame.iloc[0]
    assert str(line["time (UTC)"]) == "2026-11-20 11:00:00"
    assert (line["source"], line["prediction"], line["tenure"]) == ("scheduled", "Stays", 3)


def test_bucket_labels_are_sortable_text() -> None:
    daily = predictions_over_time([], date(2026, 11, 19), date(2026, 11, 21), ["webapp"])
    hourly = predictions_over_time([], date(2026, 11, 20), date(2026, 11, 20), ["webapp"])
    assert with_bucket_labels(daily).index.tolist() == ["2026-11-19", "2026-11-20", "2026-11-21"]
    assert with_bucket_labels(hourly).index[9] == "2026-11-20 09:00"


REASONS = [
    {"feature": "tenure", "value": 1, "contribution": 1.58},
    {"feature": "total_charges", "value": None, "contribution": 0.4},
    {"feature": "contract", "value": "Two year", "contribution": -0.95},
]


def test_prediction_frame_shows_why_after_the_probability() -> None:
    frame = prediction_frame([{"label": 1, "churn_probability": 0.8, "customer_id": None,
                               "reasons": REASONS, "features": {"tenure": 1}}])
    assert frame.columns.tolist()[:5] == ["customer_id", "prediction", "churn_probability", "why", "tenure"]
    assert frame.iloc[0]["why"] == (
        "tenure = 1 (+1.58) · total_charges = empty (+0.40) · contract = Two year (-0.95)")


def test_reasons_frame_names_feature_value_contribution_and_effect() -> None:
    up, down = "raises the churn risk", "lowers the churn risk"
    assert reasons_frame(REASONS).to_dict("records") == [
        {"feature": "tenure", "value": "1", "contribution": 1.58, "effect": up},
        {"feature": "total_charges", "value": "empty", "contribution": 0.4, "effect": up},
        {"feature": "contract", "value": "Two year", "contribution": -0.95, "effect": down},
    ]


def test_history_frame_shows_why_and_nothing_for_rows_before_reason_codes() -> None:
    item = {"created_at": "2026-11-20T12:00:00+00:00", "source": "webapp", "label": 1,
            "churn_probability": 0.7, "features": {}}
    frame = history_frame([item | {"reasons": REASONS[:1]}, item | {"reasons": []}])
    assert frame["why"].tolist() == ["tenure = 1 (+1.58)", ""]
