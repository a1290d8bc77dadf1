"""The Past predictions page in AppTest, against the real API and database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from core.api_client import ChurnApiClient
from db import session as db_session
from db.predictions import create_predictions
from tests.factories import customer_records
from tests.webapp.conftest import APP_FILE, unused_url

RUN_TIMEOUT = 60


def open_history_page() -> AppTest:
    at = AppTest.from_file(APP_FILE, default_timeout=RUN_TIMEOUT).run()
    at.switch_page("pages/past_predictions.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Past predictions"
    return at


@pytest.fixture
def history(webapp_env: str) -> datetime:
    """30 webapp and 2 scheduled predictions now, 1 scheduled prediction ten days ago."""
    client = ChurnApiClient(webapp_env)
    client.predict(customer_records(30, id_prefix="W"), source="webapp")
    client.predict(customer_records(2, id_prefix="S"), source="scheduled", file_name="good_1.csv")
    old = datetime.now(UTC) - timedelta(days=10)
    with db_session.session_scope() as session:
        create_predictions(
            session=session, source="scheduled", records=customer_records(1, id_prefix="OLD"), labels=[1],
            probabilities=[0.9], model_version="test", file_name="old.csv", created_at=old,
        )
    return old


def shown_sources(at: AppTest) -> set[str]:
    return set(at.dataframe[0].value["source"])


def test_default_is_the_last_seven_days_of_all_sources_with_the_total(history: datetime) -> None:
    before = datetime.now(UTC).date()
    at = open_history_page()
    start, end = at.date_input(key="history_dates").value
    assert (end - start).days == 6 and end in {before, datetime.now(UTC).date()}  # midnight may pass
    assert at.metric[0].value == "32"  # the old prediction is out of range
    assert (at.metric[2].value, at.metric[3].value) == ("30", "2")
    assert 0 <= float(at.metric[1].value.rstrip("%")) <= 100
    assert len(at.dataframe[0].value) == 32 and shown_sources(at) == {"webapp", "scheduled"}
    assert "Predictions 1-32 of 32, newest first." in [c.value for c in at.caption]
    assert {"time (UTC)", "source", "prediction", "churn_probability", "tenure", "contract"} <= set(
        at.dataframe[0].value.columns,
    )
    # the 32 predictions went through the API: each shows its three reasons in the "why" column
    assert all(why.count(" · ") == 2 for why in at.dataframe[0].value["why"])


def test_filter_by_source_shows_only_that_source(history: datetime) -> None:
    at = open_history_page()
    at.radio(key="history_source").set_value("scheduled predictions").run()
    assert shown_sources(at) == {"scheduled"} and len(at.dataframe[0].value) == 2
    assert at.metric[0].value == "2"
    at.radio(key="history_source").set_value("webapp").run()
    assert shown_sources(at) == {"webapp"} and len(at.dataframe[0].value) == 30


def test_a_wider_range_finds_older_predictions_and_a_single_date_is_one_day(history: datetime) -> None:
    at = open_history_page()
    today = datetime.now(UTC).date()
    at.date_input(key="history_dates").set_value((history.date(), today)).run()
    assert at.metric[0].value == "33"
    at.date_input(key="history_dates").set_value((history.date(),)).run()  # still picking the end
    assert not at.exception
    assert at.metric[0].value == "1" and at.dataframe[0].value["customer_id"].tolist() == ["OLD0"]
    assert any("until an end date is picked" in c.value for c in at.caption)


def test_pagination_pages_through_the_total(history: datetime) -> None:
    at = open_history_page()
    at.selectbox(key="history_page_size").set_value(25).run()
    assert len(at.dataframe[0].value) == 25
    at.number_input(key="history_page").set_value(2).run()
    assert len(at.dataframe[0].value) == 7
    assert "Predictions 26-32 of 32, newest first." in [c.value for c in at.caption]
    at.radio(key="history_source").set_value("scheduled predictions").run()  # page 2 no longer exists
    assert at.number_input(key="history_page").value == 1 and len(at.dataframe[0].value) == 2


def test_api_down_gives_a_readable_error(webapp_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_URL", unused_url(webapp_env))
    at = open_history_page()
    assert "cannot be reached" in at.error[0].value


def test_a_new_prediction_shows_in_the_chart_on_the_next_run(history: datetime, webapp_env: str) -> None:
    at = open_history_page()
    assert (at.metric[2].value, at.metric[3].value) == ("30", "2")
    ChurnApiClient(webapp_env).predict(customer_records(1, id_prefix="NEW"), source="webapp")
    at.run()  # the cached chart rows are keyed by the range's count, which changed
    assert at.metric[0].value == "33" and (at.metric[2].value, at.metric[3].value) == ("31", "2")
