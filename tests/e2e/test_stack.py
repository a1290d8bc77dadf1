"""The stack end to end, started the way `make run` starts it, with the real Airflow scheduler.

The API, the Airflow API server, scheduler and DAG processor run as separate processes from
launcher/services.py (the same commands `make run` and compose use), launched with launcher/run_local.py's
functions, against a test database, a throwaway Airflow metadata database on the same server,
temporary data folders and a local HTTP server standing in for the Teams webhook.

A clean, a mixed, an all-bad and an unreadable file are dropped into raw-data. Ingestion runs are
triggered at once (the schedule alone takes one file a minute) and the scheduler runs them; the
test waits, with a bound, until each file's statistics are stored, the bad files' cards reached
the receiver, and the good rows are stored once as scheduled predictions; then a prediction run
finds nothing new and is skipped. The freshness of each file (dropped -> predictions stored) is
printed.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from core.files import write_atomic
from core.settings import REPO_ROOT
from db.admin import drop_database
from launcher.run_local import (
    RunningService,
    airflow_database_url,
    airflow_env,
    run_step,
    start_service,
    stop_services,
    tail,
    wait_until_up,
)
from tests.api_server import free_port
from tests.factories import dataset_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

SERVICES = ("api", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor")
STARTUP_SECONDS = 240
FLOW_SECONDS = 420  # four files through ingestion and prediction on a loaded two-core machine
HOST = "127.0.0.1"


# --- the stand-in Teams webhook ---------------------------------------------------------------------

@dataclass
class TeamsReceiver:
    url: str
    cards: list[dict[str, Any]] = field(default_factory=list)

    def cards_naming(self, file_name: str) -> list[dict[str, Any]]:
        return [card for card in self.cards if file_name in json.dumps(card)]


@pytest.fixture
def teams_receiver() -> Iterator[TeamsReceiver]:
    receiver = TeamsReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.cards.append(json.loads(body))
            self.send_response(202)  # what a Teams Workflows webhook answers
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    receiver.url = f"http://{HOST}:{server.server_address[1]}/teams-webhook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield receiver
    server.shutdown()


# --- the stack ---------------------------------------------------------------------------------------

@dataclass
class Stack:
    api_url: str
    airflow_url: str
    raw_dir: Path
    good_dir: Path
    bad_dir: Path
    database_url: str


@pytest.fixture
def stack(clean_db: str, tmp_path: Path, teams_receiver: TeamsReceiver) -> Iterator[Stack]:
    folders = {name: tmp_path / name for name in ("raw-data", "good_data", "bad_data", "reports", "logs")}
    for folder in folders.values():
        folder.mkdir()
    api_port, airflow_port = free_port(HOST), free_port(HOST)
    api_url, airflow_url = f"http://{HOST}:{api_port}", f"http://{HOST}:{airflow_port}"
    airflow_db = f"airflow_e2e_{os.getpid()}"
    env = {
        **os.environ,
        "DATABASE_URL": clean_db, "API_HOST": HOST, "API_PORT": str(api_port), "API_URL": api_url,
        "RAW_DATA_DIR": str(folders["raw-data"]), "GOOD_DATA_DIR": str(folders["good_data"]),
        "BAD_DATA_DIR": str(folders["bad_data"]), "REPORTS_DIR": str(folders["reports"]),
        "REPORTS_BASE_URL": f"{api_url}/reports", "TEAMS_WEBHOOK_URL": teams_receiver.url,
        "RAW_FILE_SETTLE_SECONDS": "0",  # the files are written whole (renamed in) before the runs
        "AIRFLOW_API_HOST": HOST, "AIRFLOW_API_PORT": str(airflow_port),
        "PYTHONUNBUFFERED": "1",
        # two cores: a handful of task processes at a time is plenty for four files
        "AIRFLOW__CORE__PARALLELISM": "6",
    }
    env.pop("API_TOKEN", None)
    env.update(airflow_env(airflow_database_url(clean_db, airflow_db), home=tmp_path / "airflow",
                           dags_folder=REPO_ROOT / "dags", api_server_url=airflow_url))
    running: list[RunningService] = []
    try:
        run_step("airflow-db-migrate", env, folders["logs"])  # creates the database, as make run does
        running += [start_service(name, env, folders["logs"]) for name in SERVICES]
        failed = wait_until_up(running, STARTUP_SECONDS)
        assert not failed, "\n".join(f"{n}:\n{tail(folders['logs'] / f'{n}.log', 40)}" for n in failed)
        yield Stack(api_url, airflow_url, folders["raw-data"], folders["good_data"], folders["bad_data"],
                    clean_db)
    finally:
        stop_services(running, grace=15)
        drop_database(server_url=clean_db, name=airflow_db)


# --- Airflow's REST API ------------------------------------------------------------------------------

class Airflow:
    """Triggers and reads DAG runs through the API server (all-admins: a token needs no login)."""

    def __init__(self, base_url: str) -> None:
        token = httpx.get(f"{base_url}/auth/token", timeout=30).json()["access_token"]
        self.client = httpx.Client(base_url=f"{base_url}/api/v2", timeout=30,
                                   headers={"Authorization": f"Bearer {token}"})

    def wait_for_dag(self, dag_id: str, seconds: float) -> None:
        wait_until(lambda: self.client.get(f"/dags/{dag_id}").status_code == 200, seconds,
                   f"the DAG processor never registered {dag_id}")

    def trigger(self, dag_id: str) -> str:
        response = self.client.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
        assert response.status_code == 200, response.text
        return response.json()["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        instances = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()
        return {ti["task_id"]: ti["state"] for ti in instances["task_instances"]}


def wait_until(condition: Callable[[], bool], seconds: float, failure: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(2)
    pytest.fail(failure() if callable(failure) else failure)


# --- the files and the database ---------------------------------------------------------------------

def sample_files(tag: str) -> dict[str, tuple[bytes, int]]:
    """name -> (content, rows that must end up predicted)."""
    clean = dataset_rows(30, start=0)
    mixed = dataset_rows(30, start=100)
    mixed.loc[:4, "tenure"] = "-5"  # out of range: rows 0-4 invalid, 25 valid
    all_bad = dataset_rows(10, start=200)
    all_bad["tenure"] = "-1"
    return {
        f"e2e_clean_{tag}.csv": (clean.to_csv(index=False).encode(), 30),
        f"e2e_mixed_{tag}.csv": (mixed.to_csv(index=False).encode(), 25),
        f"e2e_allbad_{tag}.csv": (all_bad.to_csv(index=False).encode(), 0),
        f"e2e_unreadable_{tag}.csv": (b"\x00\x01\x02 not a csv \xff\xfe", 0),
    }


ERRORS_SQL = (
    "SELECT f.file_name, e.error_type, e.column_name, e.count FROM ingestion_errors e "
    "JOIN ingested_files f ON f.id = e.ingested_file_id WHERE f.file_name = ANY(%s)"
)
REPORT_SQL = "SELECT report_url FROM ingested_files WHERE file_name = %s"
LEDGER_SQL = "SELECT file_name FROM predicted_files"


def query(database_url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def ingested(database_url: str, names: list[str]) -> dict[str, tuple[str, int, int]]:
    rows = query(database_url, "SELECT file_name, outcome, valid_rows, invalid_rows FROM ingested_files "
                               "WHERE file_name = ANY(%s)", names)
    return {name: (outcome, valid, invalid) for name, outcome, valid, invalid in rows}


def raw_name(output_name: str) -> str:
    """The raw file a good_data output came from: `x.3f9a1c2b7d4e.csv` -> `x.csv` (see output_name)."""
    return re.sub(r"\.[0-9a-f]{12}(\.[^.]+)$", r"\1", output_name)


def predicted(database_url: str, names: list[str]) -> dict[str, tuple[int, int, datetime]]:
    """raw file -> (scheduled predictions, distinct customers, when the last was stored)."""
    rows = query(database_url, "SELECT file_name, count(*), count(DISTINCT customer_id), max(created_at) "
                               "FROM predictions WHERE source = 'scheduled' GROUP BY file_name")
    return {raw_name(name): (count, distinct, last) for name, count, distinct, last in rows
            if raw_name(name) in names}


def ledger(database_url: str, names: list[str]) -> list[str]:
    return [raw_name(name) for (name,) in query(database_url, LEDGER_SQL) if raw_name(name) in names]


# --- the test -------------------------------------------------------------------------------------

def test_files_flow_from_raw_data_to_scheduled_predictions_exactly_once(
    stack: Stack, teams_receiver: TeamsReceiver,
) -> None:
    airflow = Airflow(stack.airflow_url)
    for dag_id in ("data_ingestion", "prediction_job"):
        airflow.wait_for_dag(dag_id, STARTUP_SECONDS)
    files = sample_files(str(os.getpid()))
    names = list(files)
    write_atomic({stack.raw_dir / name: content for name, (content, _) in files.items()})
    dropped_at = datetime.now(UTC)
    for _ in files:  # one file per run: a burst of runs instead of waiting a minute per file
        airflow.trigger("data_ingestion")

    wait_until(lambda: len(ingested(stack.database_url, names)) == len(files), FLOW_SECONDS,
               lambda: f"ingested only {ingested(stack.database_url, names)}")
    stats = ingested(stack.database_url, names)
    assert {name: stats[name][0] for name in names} == dict(zip(names, ["good", "mixed", "bad", "unreadable"],
                                                                strict=True))
    assert stats[names[1]][1:] == (25, 5)
    errors = query(stack.database_url, ERRORS_SQL, names)
    assert (names[1], "out_of_range", "tenure", 5) in errors
    assert {row[0] for row in errors} == set(names[1:])  # the clean file has no error row
    assert not list(stack.raw_dir.glob("*.csv"))

    bad_files = names[1:]
    wait_until(lambda: all(teams_receiver.cards_naming(n) for n in bad_files), 120,
               lambda: f"cards received for {[n for n in bad_files if teams_receiver.cards_naming(n)]}")
    assert not teams_receiver.cards_naming(names[0])  # a clean file raises no alert
    assert all(card["type"] == "message" for card in teams_receiver.cards)
    # the card's report link opens: the API serves the Data Docs the ingestion wrote
    (report_url,) = query(stack.database_url, REPORT_SQL, names[1])[0]
    assert report_url.startswith(f"{stack.api_url}/reports/")
    assert report_url in json.dumps(teams_receiver.cards_naming(names[1]))
    report = httpx.get(report_url, timeout=30)
    assert report.status_code == 200 and "<html" in report.text.lower()

    good = {name: rows for name, (_, rows) in files.items() if rows}
    airflow.trigger("prediction_job")  # the schedule (every 2 minutes) would also get there
    wait_until(lambda: set(predicted(stack.database_url, list(good))) == set(good), FLOW_SECONDS,
               lambda: f"predictions so far: {predicted(stack.database_url, list(good))}")
    wait_until(lambda: len(ledger(stack.database_url, list(good))) == len(good), 60,
               "the ledger never recorded the files")
    stored = predicted(stack.database_url, list(good))
    for name, rows in good.items():
        assert stored[name][:2] == (rows, rows), f"{name}: stored {stored[name][:2]}, expected {rows} once"

    # nothing new in good_data: the next run is skipped, and stores nothing more
    run_id = airflow.trigger("prediction_job")
    wait_until(lambda: airflow.run_state("prediction_job", run_id) in ("success", "failed"), 180,
               lambda: f"prediction run {run_id} still {airflow.run_state('prediction_job', run_id)}")
    assert airflow.task_states("prediction_job", run_id) == {
        "check_for_new_data": "skipped", "make_predictions": "skipped",
    }
    assert predicted(stack.database_url, list(good)) == stored

    print("\nfreshness (file dropped -> its predictions stored):")
    for name in good:
        print(f"  {name}: {(stored[name][2] - dropped_at).total_seconds():.1f} s")
