"""GET /past-predictions: date window inclusive at both ends in the caller's zone, filters, pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from db import session as db_session
from db.predictions import count_query, create_predictions, page_query
from db.session import session_scope
from model.contract import FEATURE_NAMES
from tests.factories import customer_record

MODEL = "test-model"


def _store(created_at: datetime, source: str = "webapp", **changes: Any) -> int:
    with session_scope() as session:
        [id_] = create_predictions(
            session=session, source=source, records=[customer_record(**changes)], labels=[1],
            probabilities=[0.75], model_version=MODEL, file_name="f.csv" if source == "scheduled" else None,
            created_at=created_at,
        ).ids
    return id_


def _history(api_url: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(f"{api_url}/past-predictions", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_window_includes_both_end_days_and_nothing_outside(api_url: str, clean_db: str) -> None:
    day = datetime(2026, 3, 10, tzinfo=UTC)
    before = _store(day - timedelta(microseconds=1))  # last instant of the 9th
    first = _store(day)  # first instant of the 10th
    last = _store(day + timedelta(days=2) - timedelta(microseconds=1))  # last instant of the 11th
    after = _store(day + timedelta(days=2))  # the 12th

    page = _history(api_url, start_date="2026-03-10", end_date="2026-03-11")

    ids = [item["id"] for item in page["items"]]
    assert ids == [last, first]  # newest first
    assert page["total"] == 2
    assert before not in ids and after not in ids
    one_day = _history(api_url, start_date="2026-03-11", end_date="2026-03-11")
    assert [item["id"] for item in one_day["items"]] == [last]


def test_days_are_taken_in_the_requested_time_zone(api_url: str, clean_db: str) -> None:
    paris = ZoneInfo("Europe/Paris")
    just_after_midnight_in_paris = _store(datetime(2026, 3, 10, 0, 30, tzinfo=paris))  # 9th in UTC

    utc_day = _history(api_url, start_date="2026-03-10", end_date="2026-03-10")
    paris_day = _history(api_url, start_date="2026-03-10", end_date="2026-03-10", timezone="Europe/Paris")

    assert utc_day["total"] == 0
    assert [item["id"] for item in paris_day["items"]] == [just_after_midnight_in_paris]
    created_at = datetime.fromisoformat(paris_day["items"][0]["created_at"])
    assert created_at.tzinfo is not None
    assert created_at == datetime(2026, 3, 9, 23, 30, tzinfo=UTC)


def test_a_window_reaching_the_ends_of_the_calendar_works(api_url: str, clean_db: str) -> None:
    stored = _store(datetime(2026, 6, 1, tzinfo=UTC))
    for zone in ("UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"):
        page = _history(api_url, start_date="0001-01-01", end_date="9999-12-31", timezone=zone)
        assert [item["id"] for item in page["items"]] == [stored]


def test_source_filter(api_url: str, clean_db: str) -> None:
    moment = datetime(2026, 4, 1, 12, tzinfo=UTC)
    webapp = _store(moment, "webapp")
    scheduled = _store(moment + timedelta(minutes=1), "scheduled")
    window = {"start_date": "2026-04-01", "end_date": "2026-04-01"}

    assert [i["id"] for i in _history(api_url, **window, source="webapp")["items"]] == [webapp]
    only_scheduled = _history(api_url, **window, source="scheduled")["items"]
    assert [(i["id"], i["source"], i["file_name"]) for i in only_scheduled] == [
        (scheduled, "scheduled", "f.csv")
    ]
    assert [i["id"] for i in _history(api_url, **window, source="all")["items"]] == [scheduled, webapp]
    assert [i["id"] for i in _history(api_url, **window)["items"]] == [scheduled, webapp]


def test_pages_cover_every_row_once_newest_first(api_url: str, clean_db: str) -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    ids = [_store(start + timedelta(minutes=i), tenure=i, total_charges=70.0 * i) for i in range(25)]
    window = {"start_date": "2026-05-01", "end_date": "2026-05-01", "limit": 10}

    pages = [_history(api_url, **window, offset=offset) for offset in (0, 10, 20, 30)]

    assert [page["total"] for page in pages] == [25] * 4
    assert [len(page["items"]) for page in pages] == [10, 10, 5, 0]
    assert [(page["limit"], page["offset"]) for page in pages] == [(10, 0), (10, 10), (10, 20), (10, 30)]
    seen = [item["id"] for page in pages for item in page["items"]]
    assert seen == list(reversed(ids))


def test_items_carry_the_stored_features_and_result(api_url: str, clean_db: str) -> None:
    sent = customer_record(tenure=0, monthly_charges=45.25, total_charges=None, customer_id="C00042")
    before = datetime.now(UTC).date().isoformat()  # the database stamps the row with its own clock
    predicted = httpx.post(f"{api_url}/predict", json={"source": "webapp", "records": [sent]}).json()
    after = datetime.now(UTC).date().isoformat()  # the next day when the test runs across midnight

    [item] = _history(api_url, start_date=before, end_date=after)["items"]

    [prediction] = predicted["predictions"]
    assert item["id"] == prediction["id"]
    assert item["features"] == {name: sent[name] for name in FEATURE_NAMES}
    assert (item["label"], item["churn_probability"]) == (
        prediction["label"], pytest.approx(prediction["churn_probability"], abs=1e-12)
    )
    assert (item["customer_id"], item["model_version"], item["source"]) == (
        "C00042", predicted["model_version"], "webapp"
    )


@pytest.mark.parametrize("source", [None, "scheduled"])
def test_the_history_queries_are_served_by_an_index(clean_db: str, source: str | None) -> None:
    """On a table of 50,000 rows over 50 days, a one-day page and its count read an index, not the table."""
    with db_session.get_engine().begin() as conn:
        conn.execute(text(
            "INSERT INTO predictions (created_at, source, model_version, predicted_label, churn_probability, "
            f"{', '.join(FEATURE_NAMES)}) SELECT timestamptz '2026-01-01' - g * interval '86.4 seconds', "
            "CASE WHEN g % 2 = 0 THEN 'webapp' ELSE 'scheduled' END, 'm', 0, 0.1, "
            f"{', '.join(f':{name}' for name in FEATURE_NAMES)} FROM generate_series(1, 50000) AS g"
        ), customer_record())
        conn.execute(text("ANALYZE predictions"))
    start, end = datetime(2025, 12, 31, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)

    for query in (count_query(start, end, source), page_query(start, end, source, 100, 0)):
        sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
        with db_session.get_engine().connect() as conn:
            plan = "\n".join(conn.execute(text(f"EXPLAIN {sql}")).scalars())
        assert "Index" in plan and "Seq Scan" not in plan, plan
