"""A database outage during save-statistics loses nothing (issue 22): the file stays claimed until
its statistics are stored, and once the database is back every statistics row is written once and
the file's rows are in good_data / bad_data once.

The outage is real: the job's DATABASE_URL points at a TCP proxy on loopback (tests/tcp_proxy.py)
in front of the test PostgreSQL; cutting the proxy drops every open connection and refuses new
ones, as a network partition or a stopped server does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from core.settings import IngestionSettings
from db import session as db_session
from jobs import ingestion
from model.contract import IDENTIFIER
from tests.factories import dataset_rows
from tests.tcp_proxy import TcpProxy

RUN = "manual__outage"


@pytest.fixture
def proxied_db(clean_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TcpProxy]:
    """DATABASE_URL through a proxy this test can cut; the process's engine rebuilt on it."""
    url = make_url(clean_db)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    monkeypatch.setenv("DATABASE_URL", url.set(host="127.0.0.1", port=proxy.port).render_as_string(False))
    db_session.get_engine.cache_clear()
    db_session._session_factory.cache_clear()
    try:
        yield proxy
    finally:
        proxy.close()
        db_session.get_engine().dispose()
        db_session.get_engine.cache_clear()
        db_session._session_factory.cache_clear()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> IngestionSettings:
    for name, value in {
        "RAW_DATA_DIR": tmp_path / "raw-data", "GOOD_DATA_DIR": tmp_path / "good_data",
        "BAD_DATA_DIR": tmp_path / "bad_data", "REPORTS_DIR": tmp_path / "reports",
        "RAW_FILE_SETTLE_SECONDS": "0", "CLAIM_TIMEOUT_SECONDS": "0",  # recovery at the next run
        "INGESTION_CHUNK_ROWS": "7",  # several chunks even for a small file
    }.items():
        monkeypatch.setenv(name, str(value))
    settings = IngestionSettings()
    settings.raw_data_dir.mkdir()
    return settings


def _write_mixed_file(settings: IngestionSettings) -> None:
    frame = dataset_rows(30)
    frame.loc[4, "tenure"] = "-3"  # one bad row: outputs in good_data and bad_data
    frame.to_csv(settings.raw_data_dir / "customers.csv", index=False)


def _statistics_rows(clean_db: str) -> list[tuple[str, int, int]]:
    from sqlalchemy import create_engine

    engine = create_engine(clean_db)  # straight to the server, not through the proxy
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                "SELECT file_name, valid_rows, invalid_rows FROM ingested_files ORDER BY id"))]
    finally:
        engine.dispose()


def _outputs(settings: IngestionSettings) -> tuple[list[str], list[str]]:
    return (sorted(p.name for p in settings.good_data_dir.glob("customers.*.csv")),
            sorted(p.name for p in settings.bad_data_dir.glob("customers.*.csv")))


def _run_all_steps(settings: IngestionSettings) -> None:
    claim = ingestion.claim_next_file(RUN, settings)
    assert claim is not None
    validated = ingestion.validate_claimed_file(claim)
    ingestion.save_ingestion_statistics(validated, RUN, settings)
    ingestion.split_and_save_rows(validated, settings)


def _claimed_and_validated(settings: IngestionSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """The mixed file written to raw-data, claimed by RUN and validated: (claim, validated)."""
    _write_mixed_file(settings)
    claim = ingestion.claim_next_file(RUN, settings)
    assert claim is not None
    return claim, ingestion.validate_claimed_file(claim)


def test_an_outage_longer_than_the_retries_keeps_the_file_claimed_and_the_next_run_writes_it_once(
    proxied_db: TcpProxy, clean_db: str, settings: IngestionSettings,
) -> None:
    claim, validated = _claimed_and_validated(settings)

    proxied_db.cut()  # the database goes away while the statistics are stored ...
    with pytest.raises(SQLAlchemyError):
        ingestion.save_ingestion_statistics(validated, RUN, settings)
    ingestion.split_and_save_rows(validated, settings)  # ... the split, in parallel, succeeds
    with pytest.raises(SQLAlchemyError):  # the task's retry: still down
        ingestion.save_ingestion_statistics(validated, RUN, settings)

    # the file is not released: its statistics are missing
    assert Path(claim["path"]).exists()
    assert _statistics_rows(clean_db) == []
    first_outputs = _outputs(settings)
    assert first_outputs == ([f"customers.{validated['claim']['checksum'][:12]}.csv"],) * 2

    proxied_db.restore()  # back, after any length of time: the next run recovers the claim
    _run_all_steps(settings)

    assert _statistics_rows(clean_db) == [("customers.csv", 29, 1)]
    assert _outputs(settings) == first_outputs  # the same outputs, replaced, never doubled
    assert list(settings.claims_dir.iterdir()) == []  # released, no marker left
    assert list(settings.raw_data_dir.glob("*.csv")) == []
    good = next(settings.good_data_dir.glob("customers.*.csv")).read_text().splitlines()
    assert len(good) == 1 + 29 and len({line.split(",")[0] for line in good[1:]}) == 29
    assert ingestion.claim_next_file("manual__later", settings) is None  # nothing left to ingest


def test_a_database_back_before_the_retry_releases_the_file_after_its_statistics(
    proxied_db: TcpProxy, clean_db: str, settings: IngestionSettings,
) -> None:
    claim, validated = _claimed_and_validated(settings)
    proxied_db.cut()
    with pytest.raises(SQLAlchemyError):
        ingestion.save_ingestion_statistics(validated, RUN, settings)
    ingestion.split_and_save_rows(validated, settings)
    assert Path(claim["path"]).exists()

    proxied_db.restore()
    ingestion.save_ingestion_statistics(validated, RUN, settings)  # Airflow's retry

    assert not Path(claim["path"]).exists()  # released by the step that finished last
    assert list(settings.claims_dir.iterdir()) == []
    assert _statistics_rows(clean_db) == [("customers.csv", 29, 1)]
    assert ingestion.claim_next_file("manual__later", settings) is None


def test_statistics_first_then_split_release_the_file_too(
    proxied_db: TcpProxy, clean_db: str, settings: IngestionSettings,
) -> None:
    claim, validated = _claimed_and_validated(settings)
    ingestion.save_ingestion_statistics(validated, RUN, settings)
    assert Path(claim["path"]).exists()  # the rows are not split yet
    ingestion.split_and_save_rows(validated, settings)
    assert list(settings.claims_dir.iterdir()) == []
    assert _statistics_rows(clean_db) == [("customers.csv", 29, 1)]
    assert IDENTIFIER in next(settings.good_data_dir.glob("customers.*.csv")).read_text().splitlines()[0]
