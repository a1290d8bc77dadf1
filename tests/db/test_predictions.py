"""db/predictions.py: create_predictions, the one code path that writes predictions (API, demo seeder)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from db.predictions import create_predictions, delete_predictions, find_batch
from db.session import session_scope
from model.contract import FEATURE_NAMES
from tests.api.conftest import stored_count, stored_rows
from tests.factories import customer_record, customer_records


def _write(**overrides: object) -> list[int]:
    records = overrides.pop(
        "records", [customer_record(tenure=5, total_charges=350.0), customer_record(customer_id="C9")],
    )
    arguments = {
        "source": "scheduled", "records": records, "labels": [1, 0][: len(records)],
        "probabilities": [0.8, 0.1][: len(records)], "model_version": "m-1", **overrides,
    }
    with session_scope() as session:
        return create_predictions(session=session, **arguments).ids


def test_ids_come_back_in_record_order_and_rows_hold_everything(clean_db: str) -> None:
    when = datetime(2025, 12, 31, 23, 59, tzinfo=UTC)
    ids = _write(file_name="a.csv", created_at=when)

    rows = stored_rows()
    assert [row["id"] for row in rows] == ids
    assert [(r["tenure"], r["customer_id"], r["predicted_label"], r["churn_probability"]) for r in rows] == [
        (5, None, 1, 0.8), (12, "C9", 0, 0.1),
    ]
    assert {(r["source"], r["file_name"], r["model_version"], r["created_at"]) for r in rows} == {
        ("scheduled", "a.csv", "m-1", when)
    }
    expected = customer_record()
    assert {name: rows[1][name] for name in FEATURE_NAMES} == {name: expected[name] for name in FEATURE_NAMES}


def test_created_at_defaults_to_now(clean_db: str) -> None:
    before = datetime.now(UTC)
    ids = _write()
    after = datetime.now(UTC)
    rows = stored_rows()
    assert [row["id"] for row in rows] == ids and len(ids) == 2  # all() of nothing would pass
    assert all(before.replace(microsecond=0) <= row["created_at"] <= after for row in rows)


def test_a_known_batch_key_stores_nothing_and_returns_the_stored_ids(clean_db: str) -> None:
    ids = _write(batch_key="f.csv:sum:0")
    again = _write(batch_key="f.csv:sum:0", records=[customer_record()])

    assert again == ids
    assert stored_count() == 2
    with session_scope() as session:
        assert [row["id"] for row in find_batch(session=session, batch_key="f.csv:sum:0") or []] == ids
        assert find_batch(session=session, batch_key="unknown") is None


def test_mismatched_lengths_are_refused_before_writing(clean_db: str) -> None:
    with pytest.raises(ValueError, match="2 records, 1 labels"):
        _write(labels=[1])
    assert stored_count() == 0


def test_an_unknown_source_is_refused_before_writing(clean_db: str) -> None:
    with pytest.raises(ValueError, match="nightly"):
        _write(source="nightly")
    assert stored_count() == 0


def test_a_failing_write_leaves_nothing(clean_db: str) -> None:
    """One transaction: a row the database refuses takes the whole batch, and its key, with it."""
    with pytest.raises(psycopg.IntegrityError):
        _write(records=[customer_record(), customer_record(tenure=None)], batch_key="k")
    assert stored_count() == 0
    with session_scope() as session:
        assert find_batch(session=session, batch_key="k") is None


def test_a_larger_batch_goes_in_whole_and_in_order(clean_db: str) -> None:
    """Above a few rows the write switches from INSERT ... RETURNING to ids + COPY: same result."""
    when = datetime(2026, 2, 1, 8, tzinfo=UTC)
    records = customer_records(120, tenure=lambda i: i % 72, total_charges=lambda i: 70.0 * (i % 72))
    with session_scope() as session:
        ids = create_predictions(
            session=session, source="webapp", records=records, labels=[i % 2 for i in range(120)],
            probabilities=[i / 120 for i in range(120)], model_version="m-2", batch_key="big",
            created_at=when,
        ).ids

    rows = stored_rows()
    assert [row["id"] for row in rows] == ids == sorted(ids)
    assert [row["customer_id"] for row in rows] == [f"C{i}" for i in range(120)]
    assert [row["predicted_label"] for row in rows] == [i % 2 for i in range(120)]
    assert {(row["created_at"], row["batch_key"]) for row in rows} == {(when, "big")}


def test_delete_predictions_removes_exactly_the_batches_of_a_prefix(clean_db: str) -> None:
    """The prefix is literal: `demo_` does not match `demoX` (no LIKE wildcard)."""
    kept = _write(batch_key="demoX:1")
    _write(batch_key="demo_:1")
    _write(batch_key="demo_:2", records=[customer_record()])
    with session_scope() as session:
        assert delete_predictions(session=session, batch_key_prefix="demo_") == 3
    assert [row["id"] for row in stored_rows()] == kept
    with session_scope() as session:
        assert find_batch(session=session, batch_key="demo_:1") is None
        assert find_batch(session=session, batch_key="demoX:1") is not None
