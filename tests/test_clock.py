"""The suite gives the same result at any minute: its time-dependent tests, run at chosen instants.

The timelines those tests lay end at the suite's instant (tests/clock.py), 22:16 UTC in a normal
run (the minute a wall-clock run once failed at). Here each chosen instant runs them again in a
pytest of its own (`TEST_NOW` set), on this session's database server, the three at once:
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

import pytest

from core.settings import REPO_ROOT
from tests.clock import DEFAULT_TEST_NOW, TEST_NOW_VARIABLE, TIME_DEPENDENT_TESTS, suite_now

INSTANTS = ("2026-11-24T10:00:00Z", "2026-11-24T13:45:00Z", "2026-11-25T00:59:00Z")
RUN_SECONDS = 420  # each run seeds one demo history: ~1 minute on a quiet machine, ~2 on a busy one
TESTS_DIR = REPO_ROOT / "tests"


@pytest.mark.slow
@pytest.mark.timeout(RUN_SECONDS + 60)
def test_the_time_dependent_tests_pass_at_several_instants(database_url: str, tmp_path: Path) -> None:
    runs = {}
    for instant in INSTANTS:
        out = (tmp_path / f"{instant[:16].replace(':', '')}.log").open("w+")
        env = {**os.environ, TEST_NOW_VARIABLE: instant, "DATABASE_URL": database_url}
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TIME_DEPENDENT_TESTS],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )
        runs[instant] = (process, out)
    deadline = time.monotonic() + RUN_SECONDS
    results = {}
    for instant, (process, out) in runs.items():
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.seek(0)
        output = out.read()
        out.close()
        lines = output.strip().splitlines()
        results[instant] = (process.returncode, lines[-1] if lines else "(no output)", output)
        print(f"\n{TEST_NOW_VARIABLE}={instant}: {results[instant][1]}")

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
    readers = [str(path.relative_to(REPO_ROOT)) for path in (TESTS_DIR / "grafana").glob("*.py")
               if any(call in path.read_text() for call in ("datetime.now(", "utcnow(", "time.time("))]
    assert readers == []
