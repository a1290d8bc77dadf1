"""The suite gives the same result at any minute: its time-dependent tests, run at chosen instants.

The timelines those tests lay end at the suite's instant (tests/clock.py), 22:16 UTC in a normal
run (the minute a wall-clock run once failed at). Here each chosen instant runs them again in a
pytest of its own (`TEST_NOW` set), the three at once, each on a server of its own:
- 10:00, on the hour (an even minute: a scheduled scoring falls on the timeline's end);
- 13:45, three quarters past (an odd minute; the drift episode splits evenly over two hour windows);
- 00:59, a :59 just after midnight (the demo history spans two days).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import psycopg
import pytest
from sqlalchemy.engine import make_url

from core.settings import REPO_ROOT
from db import embedded
from tests.clock import DEFAULT_TEST_NOW, TEST_NOW_VARIABLE, TIME_DEPENDENT_TESTS, suite_now

INSTANTS = ("2026-11-24T10:00:00Z", "2026-11-24T13:45:00Z", "2026-11-25T00:59:00Z")
RUN_SECONDS = 420  # each run seeds one demo history: ~1 minute on a quiet machine, ~2 on a busy one
TESTS_DIR = REPO_ROOT / "tests"


def _session_has_its_own_server(database_url: str) -> bool:
    """True when this session runs on a throwaway server (DATABASE_URL was not given)."""
    url = make_url(database_url)
    try:
        folder = embedded.serving_folder(url.host or "127.0.0.1", url.port or 5432)
    except psycopg.Error:  # a server of the user's, where we may not ask
        return False
    return folder.parent.name.startswith(embedded.THROWAWAY_PREFIX)


def _start_run(instant: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[str], IO[str]]:
    out = log.open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TIME_DEPENDENT_TESTS],
        cwd=REPO_ROOT, env={**env, TEST_NOW_VARIABLE: instant}, stdout=out, stderr=subprocess.STDOUT,
        text=True,
    )
    return process, out


def _finish_run(process: subprocess.Popen[str], out: IO[str], deadline: float) -> tuple[int, str, str]:
    try:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    out.seek(0)
    output = out.read()
    out.close()
    lines = output.strip().splitlines()
    return process.returncode, lines[-1] if lines else "(no output)", output


@pytest.mark.slow
@pytest.mark.timeout(len(INSTANTS) * RUN_SECONDS + 60)
def test_the_time_dependent_tests_pass_at_several_instants(database_url: str, tmp_path: Path) -> None:
    """At once, each run on a throwaway server of its own (roles are per server: three sessions
    creating Grafana's reader role on one server at once collide); one after the other on the
    session's server when it is DATABASE_URL's."""
    concurrent = _session_has_its_own_server(database_url)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} if concurrent else dict(os.environ)
    logs = {instant: tmp_path / f"{instant[:16].replace(':', '')}.log" for instant in INSTANTS}
    results = {}
    if concurrent:
        runs = {instant: _start_run(instant, env, logs[instant]) for instant in INSTANTS}
        deadline = time.monotonic() + RUN_SECONDS
        results = {instant: _finish_run(*run, deadline) for instant, run in runs.items()}
    else:
        for instant in INSTANTS:
            run = _start_run(instant, env, logs[instant])
            results[instant] = _finish_run(*run, time.monotonic() + RUN_SECONDS)
    for instant, (_, summary, _) in results.items():
        print(f"\n{TEST_NOW_VARIABLE}={instant}: {summary}")

    failed = {instant: output[-5000:] for instant, (code, summary, output) in results.items()
              if code != 0 or " passed" not in summary or "failed" in summary or "error" in summary}
    assert not failed, "\n\n".join(f"at {instant}:\n{tail}" for instant, tail in failed.items())


def test_the_suite_instant_is_fixed_unless_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TEST_NOW_VARIABLE, raising=False)
    assert suite_now() == DEFAULT_TEST_NOW
    monkeypatch.setenv(TEST_NOW_VARIABLE, "2026-11-25T01:07:00+01:00")
    assert suite_now() == datetime(2026, 11, 25, 0, 7, tzinfo=UTC)
    monkeypatch.setenv(TEST_NOW_VARIABLE, "2026-11-25T00:07:00")  # local time of which zone?
    with pytest.raises(ValueError, match="no UTC offset"):
        suite_now()


def _names_used(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} | {
        node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}


def test_every_test_that_reads_the_suite_instant_is_run_at_the_chosen_instants() -> None:
    listed = {entry.split("::")[0] for entry in TIME_DEPENDENT_TESTS}
    readers = {
        str(path.relative_to(REPO_ROOT)) for path in TESTS_DIR.rglob("test_*.py")
        if path.name != "test_clock.py" and _names_used(path) & {"demo_db", "suite_now"}
    }
    assert readers <= listed, f"add to tests/clock.py TIME_DEPENDENT_TESTS: {sorted(readers - listed)}"
    assert all((REPO_ROOT / entry).exists() for entry in listed)


def test_the_grafana_tests_never_read_the_wall_clock() -> None:
    """Their data is laid at the suite's instant; a wall-clock moment among it would move with the run."""
    # Prometheus stamps its samples with the real time: its alert tests evaluate at the wall clock
    real_time = {"test_prometheus_alerts.py"}
    readers = [str(path.relative_to(REPO_ROOT)) for path in (TESTS_DIR / "grafana").glob("*.py")
               if path.name not in real_time
               and any(call in path.read_text() for call in ("datetime.now(", "utcnow(", "time.time("))]
    assert readers == []
