"""The instant the suite takes as "now" for what it lays in time: fixed, so every run gives the same result.

The demo history the Grafana tests read (tests/grafana/conftest.py) and the other timelines the
tests lay out themselves end at `suite_now()`: 2026-11-24 22:16 UTC unless `TEST_NOW` names
another instant (ISO 8601 with an offset, e.g. `TEST_NOW=2026-11-25T00:07:00Z`). That instant
used to be the wall clock, and a run at 22:16 UTC found the realized-F1 panel's drift windows
healthy (issue 21). Grafana's queries never call now() (their windows come from `$__timeFrom()` /
`$__timeTo()`, which the tests render from the timeline), so a history laid at a fixed instant
reads the same whenever the suite runs. tests/test_clock.py runs these tests at several instants.

Tests that go through the API or a DAG keep the wall clock: the database stamps their rows with
its own now(), and they compare only with moments taken in the same test.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

TEST_NOW_VARIABLE = "TEST_NOW"
DEFAULT_TEST_NOW = datetime(2026, 11, 24, 22, 16, tzinfo=UTC)

TIME_DEPENDENT_TESTS = (
    "tests/grafana/test_realized_performance.py",
    "tests/grafana/test_queries.py",
    "tests/grafana/test_monitoring.py",
    "tests/grafana/test_reason_codes.py",
    "tests/grafana/test_segments.py",
    "tests/grafana/test_silence_alert.py",
    "tests/grafana/test_drift_and_demo.py::test_psi_sql_matches_the_python_reference",
    "tests/grafana/test_drift_and_demo.py::test_feature_means_match_the_data",
)
"""Every test that reads the suite's instant (through the demo history or `suite_now()`); what
the instant can move under them: the hour windows of realized performance, the even minutes of
the scheduled scoring, Grafana's time buckets, a day boundary. tests/test_clock.py checks the list."""


def suite_now() -> datetime:
    """`TEST_NOW` as an aware UTC datetime, or the fixed default. Raises ValueError on a malformed
    value or one without a UTC offset (a naive instant would be read in local time)."""
    text = os.environ.get(TEST_NOW_VARIABLE)
    if not text:
        return DEFAULT_TEST_NOW
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{TEST_NOW_VARIABLE}={text!r} has no UTC offset: write e.g. 2026-11-24T22:16:00Z")
    return moment.astimezone(UTC)
