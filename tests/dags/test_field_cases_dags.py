"""Every field case (tests/field_cases/) through the ingestion DAG and then the prediction DAG.

Real Airflow (`dag.test()`), real Great Expectations, real PostgreSQL and the real API: the
eleven files are dropped into raw-data, ingested one per run, and the good rows predicted. Each
file must give its correct outcome (tests/field_case_outcomes.py): the same valid customers and
the same invalid rows as the webapp check, ids kept byte for byte, nothing shifted, nothing lost.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from core.settings import IngestionSettings
from db import session as db_session
from jobs.splitting import ERRORS_COLUMN, RAW_COLUMN
from model.contract import IDENTIFIER
from tests.api_server import start_api_server
from tests.field_case_outcomes import FIELD_CASES, IBM_SAMPLE, FieldCase

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[str]:
    base_url, stop = start_api_server(database_url)
    yield base_url
    stop()


@pytest.fixture
def folders(tmp_path: Path, clean_db: str, api: str, monkeypatch: pytest.MonkeyPatch) -> IngestionSettings:
    env = {
        "RAW_DATA_DIR": tmp_path / "raw-data", "GOOD_DATA_DIR": tmp_path / "good_data",
        "RAW_FILE_SETTLE_SECONDS": "0",  # the tests write whole files before each run
        "BAD_DATA_DIR": tmp_path / "bad_data", "REPORTS_DIR": tmp_path / "reports",
        "API_URL": api, "API_TOKEN": "", "TEAMS_WEBHOOK_URL": "",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    settings = IngestionSettings()
    settings.raw_data_dir.mkdir()
    return settings


def query(sql: str) -> list[dict[str, Any]]:
    with db_session.get_engine().connect() as conn:
        return [dict(row) for row in conn.execute(text(sql)).mappings()]


def outputs(folder: Path, case: FieldCase) -> list[Path]:
    stem = case.name.removesuffix(".csv")
    return sorted(p for p in folder.glob(f"{stem}.*.csv") if ".refused." not in p.name)


def test_every_field_case_through_ingestion_and_the_prediction_job(
    run_dag: Any, folders: IngestionSettings,
) -> None:
    for case in FIELD_CASES:
        shutil.copy(case.path, folders.raw_data_dir / case.name)
    for _ in FIELD_CASES:
        result = run_dag("data_ingestion", retries=0)
        assert result.task_states["split-and-save-data"] == "success", result
    assert list(folders.raw_data_dir.glob("*.csv")) == []
    statistics = {row["file_name"]: row for row in query("SELECT * FROM ingested_files")}
    assert set(statistics) == {case.name for case in FIELD_CASES}  # once per file

    for case in FIELD_CASES:
        row = statistics[case.name]
        good = outputs(folders.good_data_dir, case)
        bad = outputs(folders.bad_data_dir, case)
        if case.refused:
            assert (row["outcome"], row["criticality"]) == ("unreadable", "high"), case.name
            assert [p.read_bytes() for p in bad] == [case.path.read_bytes()]  # quarantined whole
            assert good == []
            continue
        good_ids = tuple(pd.read_csv(good[0], dtype=str, keep_default_na=False)[IDENTIFIER]) if good else ()
        assert good_ids == case.valid_ids, case.name
        assert (row["rows"], row["valid_rows"]) == (len(case.valid_ids) + len(case.invalid),
                                                    len(case.valid_ids)), case.name
        if case.invalid:
            [bad_path] = bad
            rejected = pd.read_csv(bad_path, dtype=str, keep_default_na=False)
            # the bad rows, in file order, fault by fault: the same columns as on every path
            found = [
                {reason.split(":", 1)[1] for reason in line.split("; ")} for line in rejected[ERRORS_COLUMN]
            ]
            expected = [{column or "*" for column in case.invalid[row]} for row in sorted(case.invalid)]
            assert found == expected, case.name
        else:
            assert bad == [], case.name
        unexpected = query(
            "SELECT e.error_type, e.column_name FROM ingestion_errors e JOIN ingested_files f"
            f" ON f.id = e.ingested_file_id WHERE f.file_name = '{case.name}'"
            " AND e.error_type = 'unexpected_column'"
        )
        assert unexpected == [], case.name  # an ignored empty column, a trailing delimiter: no column

    extra = pd.read_csv(outputs(folders.bad_data_dir, FIELD_CASES[4])[0], dtype=str, keep_default_na=False)
    assert FIELD_CASES[4].name == "extra_fields_on_first_row.csv"
    assert list(extra[ERRORS_COLUMN]) == ["malformed_row:*"]
    raw = extra.loc[0, RAW_COLUMN]
    assert raw.startswith("C02412,0,0,0,1,60,") and raw.endswith(",EXTRA")  # the row as written
    na_like = pd.read_csv(outputs(folders.bad_data_dir, FIELD_CASES[7])[0], dtype=str, keep_default_na=False)
    assert list(na_like[IDENTIFIER]) == ["NA", "null"]
    assert list(na_like[ERRORS_COLUMN]) == ["duplicate_row:customer_id", "wrong_type:total_charges"]

    predicted = run_dag("prediction_job", retries=0)
    assert predicted.state == "success", predicted
    stored = query("SELECT file_name, customer_id FROM predictions WHERE source = 'scheduled' ORDER BY id")
    for case in FIELD_CASES:
        if case.refused:
            continue
        [good_file] = outputs(folders.good_data_dir, case)
        ids = tuple(row["customer_id"] for row in stored if row["file_name"] == good_file.name)
        assert ids == case.valid_ids, case.name  # "NA" and "None" stored as the ids they are
    assert list(folders.bad_data_dir.glob("*.refused.csv")) == []  # nothing the API refused


def test_the_ibm_export_dropped_into_good_data_is_predicted_as_is(
    run_dag: Any, folders: IngestionSettings,
) -> None:
    folders.good_data_dir.mkdir()
    shutil.copy(IBM_SAMPLE, folders.good_data_dir / IBM_SAMPLE.name)
    result = run_dag("prediction_job", retries=0)
    assert result.state == "success", result
    stored = query("SELECT customer_id, female, total_charges, tenure FROM predictions ORDER BY id")
    assert len(stored) == 200
    assert stored[0] == {"customer_id": "7590-VHVEG", "female": 1, "total_charges": 29.85, "tenure": 1}
    assert [r["tenure"] for r in stored if r["total_charges"] is None] == [0] * 11
