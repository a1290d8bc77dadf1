"""The prediction DAG with real Airflow (`dag.test()`), the real API over HTTP and real PostgreSQL.

Each file of good_data is predicted exactly once: rows stored once with source=scheduled and the
file name, the ledger filled only after the API stored every chunk, no run stores a row twice,
and good_data is never changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from core.api_client import ApiUnavailableError, ChurnApiClient
from core.files import UnreadableFileError
from core.settings import PredictionJobSettings
from db import session as db_session
from jobs.prediction import (
    FilesNotPredictedError,
    find_unpredicted_files,
    make_predictions,
    predict_file,
    read_prediction_records,
)
from model.contract import IDENTIFIER, TARGET
from tests.api_server import start_api_server
from tests.dags.conftest import DagRunResult
from tests.factories import dataset_rows

TOKEN = "scheduled-job-test-token"
CHUNK_SIZE = 7  # small, so that every file goes in several chunks
SKIPPED_RUN = {"check_for_new_data": "skipped", "make_predictions": "skipped"}
SUCCESSFUL_RUN = {"check_for_new_data": "success", "make_predictions": "success"}
# dag.test() waits out retry_delay between tries: one quick retry keeps the failure test short
QUICK_RETRY = {"retries": 1, "retry_delay": timedelta(seconds=1)}


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[str]:
    """The real API (uvicorn, its own port) with a token, as the job meets it in production."""
    base_url, stop = start_api_server(database_url, env={"API_TOKEN": TOKEN})
    yield base_url
    stop()


@pytest.fixture
def good_dir(tmp_path: Path, clean_db: str, api: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty good_data folder; the job's settings point at it and at the API."""
    folder = tmp_path / "good_data"
    folder.mkdir()
    for name, value in {"GOOD_DATA_DIR": str(folder), "API_URL": api, "API_TOKEN": TOKEN,
                        "SCHEDULED_PREDICT_CHUNK_SIZE": str(CHUNK_SIZE),
                        "BAD_DATA_DIR": str(tmp_path / "bad_data")}.items():
        monkeypatch.setenv(name, value)
    return folder


def write_good_file(folder: Path, name: str, first_row: int, rows: int) -> pd.DataFrame:
    """A good_data file as ingestion writes it: customer_id, the features and the label."""
    frame = dataset_rows(rows, first_row, label=True)
    frame.to_csv(folder / name, index=False)
    return frame


def checksums(folder: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir())}


def query(sql: str) -> list[tuple[Any, ...]]:
    with db_session.get_engine().connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def rows_per_customer() -> dict[str, int]:
    return dict(query(f"SELECT {IDENTIFIER}, count(*) FROM predictions GROUP BY {IDENTIFIER}"))


def ledger() -> dict[str, tuple[str, int]]:
    return {name: (checksum, rows) for name, checksum, rows in
            query("SELECT file_name, checksum, rows FROM predicted_files")}


def run_prediction_job(run_dag: Callable[..., DagRunResult], folder: Path, **overrides: Any) -> DagRunResult:
    """One run of the DAG; asserts on the way that it left every good_data file as it was."""
    before = checksums(folder)
    result = run_dag("prediction_job", **overrides)
    assert checksums(folder) == before, "a run changed, moved or removed a good_data file"
    return result


def test_no_new_file_skips_every_task_and_stores_nothing(run_dag: Any, good_dir: Path) -> None:
    result = run_prediction_job(run_dag, good_dir)

    assert result.task_states == SKIPPED_RUN
    assert query("SELECT count(*) FROM predictions") == [(0,)]
    assert ledger() == {}


def test_new_files_are_predicted_once_then_the_next_run_skips(run_dag: Any, good_dir: Path) -> None:
    frames = {f"batch_{i}.csv": write_good_file(good_dir, f"batch_{i}.csv", i * 20, 20) for i in range(3)}

    first = run_prediction_job(run_dag, good_dir)

    assert first.task_states == SUCCESSFUL_RUN
    stored = dict(query("SELECT file_name, count(*) FROM predictions WHERE source = 'scheduled' GROUP BY 1"))
    assert stored == {name: 20 for name in frames}
    assert query("SELECT count(*) FROM predictions WHERE source <> 'scheduled'") == [(0,)]
    expected_customers = {cid for frame in frames.values() for cid in frame[IDENTIFIER]}
    assert rows_per_customer() == dict.fromkeys(expected_customers, 1)
    assert ledger() == {name: (hashlib.sha256((good_dir / name).read_bytes()).hexdigest(), 20)
                        for name in frames}

    second = run_prediction_job(run_dag, good_dir)

    assert second.task_states == SKIPPED_RUN
    assert query("SELECT count(*) FROM predictions") == [(60,)]


def test_a_file_added_later_is_predicted_once(run_dag: Any, good_dir: Path) -> None:
    write_good_file(good_dir, "early.csv", 0, 15)
    assert run_prediction_job(run_dag, good_dir).task_states == SUCCESSFUL_RUN

    late = write_good_file(good_dir, "late.csv", 100, 9)
    assert run_prediction_job(run_dag, good_dir).task_states == SUCCESSFUL_RUN
    assert run_prediction_job(run_dag, good_dir).task_states == SKIPPED_RUN

    stored = dict(query("SELECT file_name, count(*) FROM predictions GROUP BY 1"))
    assert stored == {"early.csv": 15, "late.csv": 9}
    assert {cid: n for cid, n in rows_per_customer().items() if cid in set(late[IDENTIFIER])} == \
        dict.fromkeys(late[IDENTIFIER], 1)
    assert set(ledger()) == {"early.csv", "late.csv"}


def test_api_down_fails_the_run_and_a_later_run_predicts_each_row_once(
    run_dag: Any, good_dir: Path, api: str, database_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame = write_good_file(good_dir, "while_down.csv", 200, 30)
    base_url, stop = start_api_server(database_url, env={"API_TOKEN": TOKEN})
    monkeypatch.setenv("API_URL", base_url)
    # an earlier attempt stored the first chunk and then the API went away mid-file
    records = read_prediction_records((good_dir / "while_down.csv").read_bytes(), "while_down.csv").records
    checksum = hashlib.sha256((good_dir / "while_down.csv").read_bytes()).hexdigest()
    ChurnApiClient(base_url, TOKEN).predict(
        records[:CHUNK_SIZE], source="scheduled", file_name="while_down.csv",
        batch_key=f"while_down.csv:{checksum}:0",
    )
    stop()

    failed = run_prediction_job(run_dag, good_dir, **QUICK_RETRY)

    # one comparison, so that a failure shows the whole run (a retry shows as try number 2)
    assert (failed.state, failed.task_states, failed.try_numbers) == (
        "failed", {"check_for_new_data": "success", "make_predictions": "failed"},
        {"check_for_new_data": 1, "make_predictions": 2},
    )
    assert ledger() == {}
    assert query("SELECT count(*) FROM predictions") == [(CHUNK_SIZE,)]

    # the API is back (the module's server, on the same database): one uvicorn start less under load
    monkeypatch.setenv("API_URL", api)
    recovered = run_prediction_job(run_dag, good_dir)

    assert recovered.task_states == SUCCESSFUL_RUN
    assert rows_per_customer() == dict.fromkeys(frame[IDENTIFIER], 1)
    assert ledger() == {"while_down.csv": (checksum, 30)}


class _LostOnCall(ChurnApiClient):
    """The real client, whose `failing`-th request is lost (the API gone): the fault, nothing else."""

    def __init__(self, base_url: str, token: str, failing: int) -> None:
        super().__init__(base_url, token)
        self.calls, self.failing = 0, failing

    def predict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls == self.failing:
            raise ApiUnavailableError("the prediction service went away")
        return super().predict(*args, **kwargs)


def test_a_request_lost_mid_file_stops_the_file_there_and_the_rerun_stores_each_row_once(
    good_dir: Path, api: str,
) -> None:
    """The job reads the next chunk while one request is in flight: a lost request still ends the
    file at that chunk (nothing sent after it, no ledger entry), and the rerun replays."""
    frame = write_good_file(good_dir, "midway.csv", 400, 5 * CHUNK_SIZE)
    path = good_dir / "midway.csv"
    bad = good_dir.parent / "bad_data"
    lossy = _LostOnCall(api, TOKEN, failing=3)
    with pytest.raises(ApiUnavailableError):
        predict_file(path, lossy, CHUNK_SIZE, bad_data_dir=bad)
    assert lossy.calls == 3  # the chunk read meanwhile was not sent
    assert ledger() == {}
    assert query("SELECT count(*) FROM predictions") == [(2 * CHUNK_SIZE,)]

    assert predict_file(path, ChurnApiClient(api, TOKEN), CHUNK_SIZE, bad_data_dir=bad) == 5 * CHUNK_SIZE
    assert rows_per_customer() == dict.fromkeys(frame[IDENTIFIER], 1)
    assert ledger() == {"midway.csv": (hashlib.sha256(path.read_bytes()).hexdigest(), 5 * CHUNK_SIZE)}


def test_records_keep_the_customer_id_drop_the_label_and_send_blanks_as_none() -> None:
    csv = (
        "customer_id,female,senior_citizen,partner,dependents,tenure,phone_service,multiple_lines,"
        "internet_service,online_security,online_backup,device_protection,tech_support,streaming_tv,"
        "streaming_movies,contract,paperless_billing,payment_method,monthly_charges,total_charges,churn\n"
        "C09999,1,0,1,0,0,1,No,DSL,No,Yes,No,No,No,No,Two year,1,Mailed check,52.55,,No\n"
    )
    [record] = read_prediction_records(csv.encode(), "sample.csv").records

    assert TARGET not in record
    assert record[IDENTIFIER] == "C09999"
    assert record["total_charges"] is None
    assert record["tenure"] == 0 and type(record["tenure"]) is int
    assert record["monthly_charges"] == 52.55
    assert record["contract"] == "Two year"


def test_rows_the_api_refuses_are_set_aside_and_never_block_the_file(run_dag: Any, good_dir: Path) -> None:
    write_good_file(good_dir, "fine.csv", 300, 10)
    write_good_file(good_dir, "broken.csv", 310, 10).drop(columns=["tenure"]).to_csv(
        good_dir / "broken.csv", index=False)
    refused = write_good_file(good_dir, "refused.csv", 320, 10)
    refused.iloc[2, refused.columns.get_loc("contract")] = "Ten years"  # valid text, not a contract
    refused.iloc[8, refused.columns.get_loc("total_charges")] = None  # a long tenure: cross-field rule
    assert int(refused.iloc[8]["tenure"]) > 0
    refused.to_csv(good_dir / "refused.csv", index=False)
    bad_dir = good_dir.parent / "bad_data"

    result = run_prediction_job(run_dag, good_dir)

    assert (result.state, result.task_states) == ("success", SUCCESSFUL_RUN)
    stored = dict(query("SELECT file_name, count(*) FROM predictions GROUP BY 1"))
    assert stored == {"fine.csv": 10, "refused.csv": 8}
    assert {name: rows for name, (_, rows) in ledger().items()} == {
        "fine.csv": 10, "refused.csv": 8, "broken.csv": 0,
    }
    expected_ids = set(refused[IDENTIFIER]) - {refused.iloc[2][IDENTIFIER], refused.iloc[8][IDENTIFIER]}
    assert {cid for cid in rows_per_customer() if cid in set(refused[IDENTIFIER])} == expected_ids
    [aside] = bad_dir.glob("refused.*.refused.csv")
    lines = pd.read_csv(aside, dtype=str, keep_default_na=False)
    assert list(lines["_row"]) == ["4", "10"]  # file rows as a spreadsheet numbers them
    assert lines.loc[0, "_errors"].startswith("contract: ")
    assert lines.loc[1, "_errors"].startswith("total_charges: total charges empty for a customer")
    assert lines.loc[0, "_raw"].startswith(refused.iloc[2][IDENTIFIER] + ",")
    [whole] = bad_dir.glob("broken.*.refused.csv")
    assert "broken.csv: missing columns ['tenure']" in whole.read_text()
    # set aside and recorded: the next run has nothing to do
    assert run_prediction_job(run_dag, good_dir).task_states == SKIPPED_RUN


def test_a_file_the_api_refuses_as_a_whole_fails_the_run_after_the_others(
    run_dag: Any, good_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_good_file(good_dir, "fine.csv", 300, 10)
    monkeypatch.setenv("API_TOKEN", "a-wrong-token")  # 401: no row named, sending again cannot help
    with pytest.raises(FilesNotPredictedError) as raised:
        make_predictions([{"file_name": "fine.csv"}], PredictionJobSettings())
    assert "fine.csv: The prediction service wants a valid API token" in str(raised.value)
    assert ledger() == {}


def test_a_file_whose_content_changed_is_listed_again(good_dir: Path) -> None:
    write_good_file(good_dir, "same_name.csv", 400, 5)
    make_predictions([{"file_name": "same_name.csv"}], PredictionJobSettings())
    with db_session.session_scope() as session:
        assert find_unpredicted_files(good_dir, session) == []

    write_good_file(good_dir, "same_name.csv", 405, 5)
    with db_session.session_scope() as session:
        [changed] = find_unpredicted_files(good_dir, session)

    assert changed.name == "same_name.csv"
    assert changed.checksum == hashlib.sha256((good_dir / "same_name.csv").read_bytes()).hexdigest()
    assert changed.checksum != ledger()["same_name.csv"][0]


@pytest.mark.parametrize("content", [b"", b"\x00\x01 not, a\n csv \"file"])
def test_a_file_that_is_not_a_csv_is_named_as_unreadable(content: bytes) -> None:
    with pytest.raises(UnreadableFileError, match=r"odd\.csv: "):
        read_prediction_records(content, "odd.csv")


def test_a_good_file_is_listed_whatever_its_extension(good_dir: Path) -> None:
    # ingestion keeps the raw file's name: a raw `export.CSV` lands in good_data as `export.CSV`
    for name in ("export.CSV", "customers.txt", "plain.csv"):
        write_good_file(good_dir, name, 0, 3)
    (good_dir / ".plain.csv.123.tmp").write_text("a write in progress")

    with db_session.session_scope() as session:
        listed = [f.name for f in find_unpredicted_files(good_dir, session)]

    assert listed == ["customers.txt", "export.CSV", "plain.csv"]
