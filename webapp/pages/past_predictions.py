"""Past predictions page: what was predicted over a date range, by the webapp or the scheduled job."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import streamlit as st

from core.api_client import ApiError
from webapp import api_cache
from webapp.markdown_text import escape_markdown
from webapp.results import churn_share, history_frame, is_hourly, predictions_over_time, with_bucket_labels
from webapp.widgets import prediction_columns

# What the user picks -> the API's `source` filter.
SOURCE_CHOICES = {"all": "all", "webapp": "webapp", "scheduled predictions": "scheduled"}
ALL_SOURCES = ("webapp", "scheduled")
SOURCE_TITLES = {"webapp": "From the webapp", "scheduled": "Scheduled"}
DEFAULT_DAYS = 7
PAGE_SIZES = (25, 50, 100, 200)


def main() -> None:
    st.title("Past predictions")
    dates_column, source_column = st.columns([1, 1])
    with dates_column:
        picked = st.date_input(
            "Dates (UTC)", value=default_range(), max_value=utc_today(), key="history_dates",
            help="Both ends included.",
        )
    with source_column:
        choice = st.radio("Source", list(SOURCE_CHOICES), horizontal=True, key="history_source")
    date_range = resolve_range(picked)
    if date_range is None:
        st.info("Pick a start date.")
        return
    start, end = date_range
    if isinstance(picked, tuple) and len(picked) == 1:
        st.caption(f"Showing {start:%Y-%m-%d} only, until an end date is picked.")
    source = SOURCE_CHOICES[choice]
    overview = st.container()  # drawn above the table, filled once the table told the total
    try:
        total = show_table(start, end, source)
        with overview:
            show_overview(start, end, source, total)
    except ApiError as exc:
        st.error(escape_markdown(exc.message))


def utc_today() -> date:
    return datetime.now(UTC).date()


def default_range() -> tuple[date, date]:
    """The last seven days, today included."""
    today = utc_today()
    return today - timedelta(days=DEFAULT_DAYS - 1), today


def resolve_range(picked: Any) -> tuple[date, date] | None:
    """st.date_input gives (start, end), (start,) while the user is still picking, or () when cleared."""
    if isinstance(picked, date):
        return picked, picked
    values = [value for value in (picked or ()) if value is not None]
    if not values:
        return None
    start, end = values[0], values[-1]
    return (start, end) if start <= end else (end, start)


def show_overview(start: date, end: date, source: str, total: int) -> None:
    """The chart of predictions over time by source and the churn rate, over the whole range."""
    total, items = api_cache.history_for_chart(start, end, source, total)
    sources = ALL_SOURCES if source == "all" else (source,)
    share = churn_share(items)
    columns = st.columns(2 + len(sources))
    columns[0].metric("Predictions", f"{total:,}")
    columns[1].metric(
        "Predicted to churn", "-" if share is None else f"{share:.1%}", help=training_rate_help(),
    )
    for column, name in zip(columns[2:], sources, strict=True):
        column.metric(SOURCE_TITLES[name], f"{sum(1 for item in items if item.get('source') == name):,}")
    if len(items) < total:
        st.caption(f"The chart and the churn rate use the newest {len(items):,} of {total:,} predictions.")
    over_time = predictions_over_time(items, start, end, sources)
    st.markdown(f"**Predictions per {'hour' if is_hourly(start, end) else 'day'}, by source**")
    st.bar_chart(
        with_bucket_labels(over_time), y_label="predictions", x_label="", height=260, stack=True, sort=False,
    )


def training_rate_help() -> str | None:
    try:
        rate = api_cache.model_info().get("training_churn_rate")
    except ApiError:
        return None
    return None if rate is None else f"For comparison, {rate:.1%} of the training customers churned."


def show_table(start: date, end: date, source: str) -> int:
    """One page of stored predictions, newest first; returns the total count of the range."""
    size_column, page_column, _ = st.columns([1, 1, 2])
    page_size = size_column.selectbox("Rows per page", PAGE_SIZES, index=1, key="history_page_size")
    page_slot = page_column.empty()
    page_number = int(st.session_state.get("history_page", 1))
    page = api_cache.api_client().past_predictions(
        start_date=start, end_date=end, source=source, limit=page_size, offset=(page_number - 1) * page_size,
    )
    total = int(page.get("total", 0))
    pages = max(1, math.ceil(total / page_size))
    if page_number > pages:  # the filters changed under the page number: back to the first page
        st.session_state["history_page"] = page_number = 1
        page = api_cache.api_client().past_predictions(
            start_date=start, end_date=end, source=source, limit=page_size, offset=0,
        )
    page_slot.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key="history_page")
    items = page.get("items", [])
    if not items:
        st.info("No predictions in this range for this source.")
        return total
    first = (page_number - 1) * page_size + 1
    st.caption(f"Predictions {first:,}-{first + len(items) - 1:,} of {total:,}, newest first.")
    st.dataframe(history_frame(items), hide_index=True, column_config=prediction_columns())
    return total


main()
