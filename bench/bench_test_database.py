"""What a test session's own PostgreSQL costs: the session's database set up on a throwaway server
vs on a server that already runs (what the suite did before it had a server of its own).

    python -m bench.bench_test_database

Both in the same run, on this machine: the baseline is `tests/conftest.py`'s work on a running
server (CREATE DATABASE, the Alembic migrations, the training baseline); ours adds starting a
throwaway server first (`db.embedded.throwaway_server`: initdb, start) and, at the end, stopping
and deleting it. Medians of REPEATS.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import ExitStack

from db import embedded
from db import session as db_session
from db.admin import create_database, drop_database
from db.manage import load_baseline, migrate

REPEATS = 3
NAME = f"churn_bench_setup_{os.getpid()}"


def session_database(server_url: str) -> None:
    """What the test session's fixture does on a server: its database, migrated, with the baseline."""
    url = create_database(server_url=server_url, name=NAME, replace=True)
    os.environ["DATABASE_URL"] = url
    db_session.get_engine.cache_clear()
    db_session._session_factory.cache_clear()
    migrate(url)
    load_baseline()
    db_session.get_engine().dispose()


def main() -> None:
    running, own, own_teardown = [], [], []
    with embedded.throwaway_server() as shared:  # stands for a server that was already up
        for _ in range(REPEATS):
            began = time.perf_counter()
            session_database(shared)
            running.append(time.perf_counter() - began)
            drop_database(server_url=shared, name=NAME)
    for _ in range(REPEATS):
        with ExitStack() as stack:
            began = time.perf_counter()
            session_database(stack.enter_context(embedded.throwaway_server()))
            own.append(time.perf_counter() - began)
            began = time.perf_counter()
        own_teardown.append(time.perf_counter() - began)
    baseline, ours = statistics.median(running), statistics.median(own)
    print(f"test session database set-up, on a running server: {baseline:.2f} s (baseline)")
    print(f"on a throwaway server of its own: {ours:.2f} s = {ours / baseline:.2f}x the baseline, "
          f"+ {statistics.median(own_teardown):.2f} s to stop and delete it")


if __name__ == "__main__":
    main()
