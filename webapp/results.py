"""Tables and chart data for the pages, from the API's JSON answers. Pure pandas, no Streamlit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import pandas as pd

LABEL_WORDS = {1: "Churn", 0: "Stays"}
PROBABILITY_BIN_WIDTH = 0.1
# Up to two days the history chart counts per hour; beyond, per day.
HOURLY_UP_TO_DAYS = 2
PROBABILITY_COLUMN = "churn_probability"
WHY_COLUMN = "why"
TOWARDS, AWAY = "raises the churn risk", "lowers the churn risk"


def label_word(label: Any) -> str:
    return LABEL_WORDS.get(label, str(label))


def prediction_frame(
    predictions: Sequence[Mapping[str, Any]], rows: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One line per prediction: (file row), customer id, label, probability, then the features."""
    lines = []
    for index, prediction in enumerate(predictions):
        line: dict[str, Any] = {}
        if rows is not None:
            line["row"] = rows[index]
        line["customer_id"] = prediction.get("customer_id")
        line["prediction"] = label_word(prediction.get("label"))
        line["churn_probability"] = prediction.get("churn_probability")
        if "reasons" in prediction:
            line[WHY_COLUMN] = reasons_text(prediction["reasons"])
        if "model_version" in prediction:
            line["model_version"] = prediction["model_version"]
        line.update(prediction.get("features", {}))
        lines.append(line)
    return pd.DataFrame(lines)


def answered_by(predictions: Sequence[Mapping[str, Any]]) -> str | None:
    """Which model version answered: "Answered by model `v1`." or, when a promotion fell between
    chunks, "Answered by models `v1` (600 customers) and `v2` (400 customers)."; None when unknown."""
    counts: dict[str, int] = {}
    for prediction in predictions:
        version = prediction.get("model_version")
        if version:
            counts[str(version)] = counts.get(str(version), 0) + 1
    if not counts:
        return None
    if len(counts) == 1:
        return f"Answered by model `{next(iter(counts))}`."
    parts = [f"`{version}` ({count} customers)" for version, count in counts.items()]
    return f"Answered by models {', '.join(parts[:-1])} and {parts[-1]}."


def reasons_text(reasons: Sequence[Mapping[str, Any]]) -> str:
    """The reason codes in one cell: "tenure = 1 (+1.58) · contract = Month-to-month (+0.91) · ...".

    Contributions are in logit units, signed (+ towards churn). Empty for a prediction stored
    before reason codes existed.
    """
    return " · ".join(
        f"{reason['feature']} = {_shown(reason.get('value'))} ({reason['contribution']:+.2f})"
        for reason in reasons
    )


def reasons_frame(reasons: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The "why" table of one prediction: feature, its value, contribution to the logit, effect."""
    return pd.DataFrame(
        [
            {"feature": reason["feature"], "value": _shown(reason.get("value")),
             "contribution": reason["contribution"],
             "effect": TOWARDS if reason["contribution"] > 0 else AWAY}
            for reason in reasons
        ],
        columns=["feature", "value", "contribution", "effect"],
    )


def _shown(value: Any) -> str:
    return "empty" if value is None else str(value)


def churn_share(predictions: Sequence[Mapping[str, Any]]) -> float | None:
    """Share of predictions labelled churn; None when there are none."""
    if not predictions:
        return None
    return sum(1 for p in predictions if p.get("label") == 1) / len(predictions)


def probability_histogram(
    probabilities: Sequence[float], width: float = PROBABILITY_BIN_WIDTH,
) -> pd.DataFrame:
    """Customers per churn-probability band ("0.0-0.1", ...), every band present, in order."""
    bands = round(1 / width)
    counts = [0] * bands
    for probability in probabilities:
        counts[min(int(probability / width), bands - 1)] += 1
    labels = [f"{i * width:.1f}-{(i + 1) * width:.1f}" for i in range(bands)]
    return pd.DataFrame({"churn probability": labels, "customers": counts}).set_index("churn probability")


def history_frame(items: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Stored predictions as a table: time (UTC), source, file, label, probability, then the features."""
    lines = []
    for item in items:
        line: dict[str, Any] = {
            "time (UTC)": pd.Timestamp(item["created_at"]).tz_convert("UTC").tz_localize(None),
            "source": item.get("source"),
            "prediction": label_word(item.get("label")),
            "churn_probability": item.get("churn_probability"),
            WHY_COLUMN: reasons_text(item.get("reasons") or []),
            "customer_id": item.get("customer_id"),
            "file_name": item.get("file_name"),
            "model_version": item.get("model_version"),
        }
        line.update(item.get("features", {}))
        lines.append(line)
    return pd.DataFrame(lines)


def is_hourly(start: date, end: date) -> bool:
    return (end - start).days < HOURLY_UP_TO_DAYS


def predictions_over_time(
    items: Sequence[Mapping[str, Any]], start: date, end: date, sources: Sequence[str],
) -> pd.DataFrame:
    """Predictions per hour (ranges up to two days) or per day, one column per source, gaps as 0."""
    freq = "h" if is_hourly(start, end) else "D"
    index = pd.date_range(
        pd.Timestamp(start), pd.Timestamp(end + timedelta(days=1)), freq=freq, inclusive="left",
        name="time (UTC)",
    )
    frame = pd.DataFrame(0, index=index, columns=list(sources))
    if items:
        times = pd.to_datetime([item["created_at"] for item in items], utc=True).tz_localize(None)
        counts = (
            pd.DataFrame({"time": times.floor(freq), "source": [item.get("source") for item in items]})
            .groupby(["time", "source"]).size().unstack(fill_value=0)
        )
        frame = frame.add(counts.reindex(index=index, columns=frame.columns, fill_value=0), fill_value=0)
    return frame.astype(int)


def with_bucket_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Time buckets as sortable text ("2026-11-24", "2026-11-24 09:00"), so bars get their full width."""
    hourly = len(frame.index) > 1 and (frame.index[1] - frame.index[0]) < pd.Timedelta(days=1)
    labelled = frame.copy()
    labelled.index = frame.index.strftime("%Y-%m-%d %H:00" if hourly else "%Y-%m-%d")
    labelled.index.name = frame.index.name
    return labelled
