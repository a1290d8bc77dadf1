"""GET /past-predictions for a one-day window (first page of 100) on 1,000,000 and on 10,000,000 rows.

    python -m bench.bench_api_history

The table grows the way production's does: at a steady 10,000 predictions a day, 1,000,000 rows
are 100 days of history (4 monthly partitions) and 10,000,000 rows are 1,000 days (34). The queried
day (the most recent) holds the same 10,000 rows in both runs, so the ratio shows what the table's
size alone costs the query (total count plus the first page, newest first). Goal: the 10M figure
at most 1.5x the 1M one. The rows are generated inside PostgreSQL (generate_series, indexes built
after the load, bench/_common.py::bulk_insert_predictions): 10M rows take a few minutes and about
6 GB, in scratch databases dropped at the end.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from bench import _common
from model.contract import FEATURE_NAMES, IDENTIFIER, default_record

ROWS_PER_DAY = 10_000
SMALL, LARGE = 1_000_000, 10_000_000
REQUESTS = 60
LAST_DAY = datetime(2026, 1, 1, tzinfo=UTC)  # rows end at the last instant of 2025-12-31


def add_history(url: str, first: int, last: int) -> None:
    """Rows number `first`..`last` counting back in time from LAST_DAY, generated in the server."""
    features = default_record()
    columns = ["created_at", "source", "file_name", "model_version", "predicted_label",
               "churn_probability", IDENTIFIER, *FEATURE_NAMES]
    varying = {"tenure": "(g %% 72)", "total_charges": "(70.0 * (g %% 72))"}
    values = [
        f"%(end)s - g * interval '{86_400 / ROWS_PER_DAY} seconds'",
        "CASE WHEN g %% 3 = 0 THEN 'webapp' ELSE 'scheduled' END",
        "'history.csv'", "'bench'", "(g %% 4 = 0)::int", "(g %% 100) / 100.0", "'C' || g",
        *[varying.get(name, f"%({name})s") for name in FEATURE_NAMES],
    ]
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        # newest last, as appends arrive: g counts back in time
        _common.bulk_insert_predictions(
            conn, f"INSERT INTO predictions ({', '.join(columns)}) SELECT {', '.join(values)} "
            "FROM generate_series(%(last)s, %(first)s, -1) AS g",
            {"end": LAST_DAY, "first": first, "last": last, **features},
            first_at=LAST_DAY - timedelta(days=last / ROWS_PER_DAY), last_at=LAST_DAY,
        )
    print(f"loaded {last - first + 1:,} predictions in {time.perf_counter() - started:.0f} s", flush=True)


def one_day_page(client: httpx.Client) -> float:
    """Seconds to fetch the first page of the most recent day (checked: 1,000 rows, 100 shown)."""
    day = (LAST_DAY - timedelta(days=1)).date().isoformat()

    def fetch() -> None:
        response = client.get("/past-predictions", params={"start_date": day, "end_date": day, "limit": 100})
        response.raise_for_status()
        page = response.json()
        assert page["total"] == ROWS_PER_DAY and len(page["items"]) == 100, page["total"]

    return _common.timed(fetch)


def main() -> None:
    # two databases and two API processes, queried alternately, so that both figures see the
    # same machine load (the machine is shared; a drift between two runs would be read as a ratio)
    with _common.scratch_database("_1m") as small_url, _common.scratch_database("_10m") as large_url:
        add_history(_common.libpq_url(small_url), 1, SMALL)
        add_history(_common.libpq_url(large_url), 1, LARGE)
        small_api, stop_small = _common.start_api_server(small_url, env={"API_TOKEN": ""})
        large_api, stop_large = _common.start_api_server(large_url, env={"API_TOKEN": ""})
        try:
            with httpx.Client(base_url=small_api, timeout=60) as small_client, \
                    httpx.Client(base_url=large_api, timeout=60) as large_client:
                one_day_page(small_client), one_day_page(large_client)  # warm-up
                small_times, large_times = [], []
                for _ in range(REQUESTS):
                    small_times.append(one_day_page(small_client))
                    large_times.append(one_day_page(large_client))
        finally:
            stop_small()
            stop_large()
    small, large = statistics.median(small_times), statistics.median(large_times)
    print(
        f"api history, one-day page of 100: {large / small:.2f}x from {SMALL:,} to {LARGE:,} rows "
        f"({small * 1000:.1f} ms at 1M, {large * 1000:.1f} ms at 10M, median of {REQUESTS}; "
        f"goal <= 1.5x{'' if large / small <= 1.5 else ': MISSED on this machine'})"
    )


if __name__ == "__main__":
    main()
