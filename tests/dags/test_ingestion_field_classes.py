"""The failure classes of the field report that come without a file (tests/field_cases/README.md).

Each runs the ingestion steps as the DAG does (claim, validate, save-statistics, split) on real
files and the real database, and asserts that nothing is lost, replaced or counted twice:
two different files under one name, a crash after save-statistics, a half-written temporary
left by a killed writer, a NUL byte far inside a file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select

from core.settings import IngestionSettings
from db.models import IngestedFile
from db.session import session_scope
from jobs import ingestion
from jobs.claim import recover_stale_claims
from model.contract import IDENTIFIER
from tests.dags.ingestion_samples import write_csv
from tests.factories import dataset_rows


@pytest.fixture
def settings(tmp_path: Path, clean_db: str) -> IngestionSettings:
    return IngestionSettings(
        raw_data_dir=tmp_path / "raw-data", good_data_dir=tmp_path / "good_data",
        bad_data_dir=tmp_path / "bad_data", reports_dir=tmp_path / "reports",
        reports_base_url="http://reports.example/reports", teams_webhook_url=None,
        raw_file_settle_seconds=0,
    )


def ingest(
    settings: IngestionSettings, run_id: str, *, crash_after_statistics: bool = False,
) -> dict[str, Any]:
    """One run of the DAG's steps; `crash_after_statistics` stops it before the split."""
    claim = ingestion.claim_next_file(run_id, settings)
    assert claim is not None
    validated = ingestion.validate_claimed_file(claim)
    ingestion.save_ingestion_statistics(validated, run_id, settings)
    if not crash_after_statistics:
        ingestion.split_and_save_rows(validated, settings)
    return validated


def statistics() -> list[tuple[str, str | None, int, int]]:
    with session_scope() as session:
        rows = session.scalars(select(IngestedFile).order_by(IngestedFile.id))
        return [(r.file_name, r.dag_run_id, r.rows, r.valid_rows) for r in rows]


def ids_in(folder: Path) -> list[str]:
    return sorted(i for path in folder.glob("*.csv") for i in pd.read_csv(path, dtype=str)[IDENTIFIER])


def test_two_files_under_one_name_keep_both_outputs(settings: IngestionSettings) -> None:
    first, second = dataset_rows(35), dataset_rows(22, start=100)
    second.loc[[0, 1], "tenure"] = "-1"
    write_csv(first, settings.raw_data_dir, "export.csv")
    ingest(settings, "run-1")
    write_csv(second, settings.raw_data_dir, "export.csv")  # the same name, other customers
    ingest(settings, "run-2")
    # 57 rows arrived, 57 rows are in the outputs: the second file replaced nothing
    assert sorted([*ids_in(settings.good_data_dir), *ids_in(settings.bad_data_dir)]) == sorted(
        [*first[IDENTIFIER], *second[IDENTIFIER]]
    )
    assert len(list(settings.good_data_dir.glob("export.*.csv"))) == 2
    assert statistics() == [("export.csv", "run-1", 35, 35), ("export.csv", "run-2", 22, 20)]


def test_a_crash_after_save_statistics_stores_the_file_once(settings: IngestionSettings) -> None:
    frame = dataset_rows(40)
    write_csv(frame, settings.raw_data_dir, "big.csv")
    ingest(settings, "crashed-run", crash_after_statistics=True)  # the claim is left behind
    recover_stale_claims(settings.raw_data_dir, settings.claims_dir, 0)  # a later run gives it back
    ingest(settings, "recovering-run")
    assert statistics() == [("big.csv", "recovering-run", 40, 40)]  # one row, not 80 rows counted
    assert ids_in(settings.good_data_dir) == sorted(frame[IDENTIFIER])


def test_a_killed_writers_temporary_is_cleaned_by_the_next_run(settings: IngestionSettings) -> None:
    settings.bad_data_dir.mkdir(parents=True)
    orphan = settings.bad_data_dir / ".export.3f9a1c2b7d4e.csv.0a1b2c3d4e5f.tmp"
    orphan.write_text("customer_id,tenure\nC1,")  # cut mid-row by a kill
    old = time.time() - settings.claim_timeout_seconds - 60
    os.utime(orphan, (old, old))
    in_progress = settings.bad_data_dir / ".other.csv.5f4e3d2c1b0a.tmp"
    in_progress.write_text("a write still going on")
    write_csv(dataset_rows(5), settings.raw_data_dir, "next.csv")
    ingest(settings, "next-run")
    assert not orphan.exists()
    assert in_progress.exists()  # younger than the claim timeout: maybe still being written


def test_a_nul_byte_far_inside_a_file_never_reaches_good_data(settings: IngestionSettings) -> None:
    content = dataset_rows(2000).to_csv(index=False).encode()
    assert len(content) > 70_000
    spoiled = content[:70_000] + b"\x00" + content[70_001:]
    settings.raw_data_dir.mkdir(parents=True)
    (settings.raw_data_dir / "nul.csv").write_bytes(spoiled)
    validated = ingest(settings, "run")
    assert validated["outcome"]["readable"] is False
    assert validated["outcome"]["detail"].startswith("the file holds a NUL byte at byte 70000")
    assert not settings.good_data_dir.exists() or list(settings.good_data_dir.iterdir()) == []
    [quarantined] = settings.bad_data_dir.iterdir()
    assert quarantined.read_bytes() == spoiled
