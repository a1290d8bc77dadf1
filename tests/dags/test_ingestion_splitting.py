"""Splitting validated files into good_data and bad_data: whole outputs, every row exactly once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.error_types import ErrorType
from core.files import UnreadableFileError
from core.reader import read_customer_file
from core.settings import DataFolderSettings, IngestionSettings
from jobs.claim import ClaimedFile, claim_raw_file, recover_stale_claims, waiting_raw_files
from jobs.splitting import (
    ERRORS_COLUMN,
    RAW_COLUMN,
    ClaimLostError,
    RowsNotConservedError,
    SplitResult,
    output_name,
    split_good_bad_rows,
)
from jobs.validation import ValidationOutcome, validate_customer_file
from model.contract import FEATURE_NAMES, IDENTIFIER, record_json_schema
from model.data import DATASET_PATH
from scripts.inject_errors import inject_errors
from scripts.split_dataset import split_dataset
from tests.dags.ingestion_samples import write_csv
from tests.factories import dataset_rows


@pytest.fixture
def settings(tmp_path: Path) -> IngestionSettings:
    return IngestionSettings(
        raw_data_dir=tmp_path / "raw-data", good_data_dir=tmp_path / "good_data",
        bad_data_dir=tmp_path / "bad_data",
    )


def _claim(settings: IngestionSettings) -> ClaimedFile:
    claimed = claim_raw_file(settings.raw_data_dir, settings.claims_dir, "test-run")
    assert claimed is not None
    return claimed


def _ingest(settings: IngestionSettings) -> tuple[ValidationOutcome, SplitResult, ClaimedFile]:
    claimed = _claim(settings)
    outcome = validate_customer_file(claimed.path, file_name=claimed.original_name)
    result = split_good_bad_rows(
        claimed, outcome, good_data_dir=settings.good_data_dir, bad_data_dir=settings.bad_data_dir,
    )
    return outcome, result, claimed


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str)


def claimed_bytes(frame: pd.DataFrame) -> bytes:
    """The bytes write_csv gives the frame: what the outputs' names are derived from."""
    return frame.to_csv(index=False).encode()


def test_a_clean_file_goes_whole_to_good_data(settings: IngestionSettings) -> None:
    frame = dataset_rows(30)
    write_csv(frame, settings.raw_data_dir, "clean.csv")
    _, result, claimed = _ingest(settings)
    assert result.good_path == settings.good_data_dir / output_name("clean.csv", claimed_bytes(frame))
    assert result.bad_path is None
    pd.testing.assert_frame_equal(_read(result.good_path), frame)
    assert not claimed.path.exists()
    assert not settings.bad_data_dir.exists() or list(settings.bad_data_dir.iterdir()) == []


def test_a_mixed_file_is_split_with_reasons_beside_the_bad_rows(settings: IngestionSettings) -> None:
    frame = dataset_rows(30)
    frame.loc[3, "tenure"] = "-4"
    frame.loc[9, "contract"] = "Weekly"
    frame.loc[9, "monthly_charges"] = "lots"
    write_csv(frame, settings.raw_data_dir, "mixed.csv")
    _, result, claimed = _ingest(settings)
    good, bad = _read(result.good_path), _read(result.bad_path)
    assert (len(good), len(bad)) == (28, 2)
    assert list(bad[IDENTIFIER]) == [frame.loc[3, IDENTIFIER], frame.loc[9, IDENTIFIER]]
    assert bad.loc[0, ERRORS_COLUMN] == "out_of_range:tenure"
    reasons = set(bad.loc[1, ERRORS_COLUMN].split("; "))
    assert reasons == {"unknown_category:contract", "wrong_type:monthly_charges"}
    assert bad.loc[1, "monthly_charges"] == "lots"  # the bad value kept as it came
    assert not set(good[IDENTIFIER]) & set(bad[IDENTIFIER])
    assert not claimed.path.exists()


def test_an_all_bad_file_goes_whole_to_bad_data(settings: IngestionSettings) -> None:
    write_csv(dataset_rows(12).drop(columns=["tenure"]), settings.raw_data_dir, "no_tenure.csv")
    outcome, result, _ = _ingest(settings)
    assert outcome.outcome == "bad"
    assert result.good_path is None
    bad = _read(result.bad_path)
    assert len(bad) == 12
    assert set(bad[ERRORS_COLUMN]) == {"missing_column:tenure"}


def test_an_unreadable_file_is_quarantined_byte_for_byte(settings: IngestionSettings) -> None:
    settings.raw_data_dir.mkdir(parents=True)
    content = b"\x00\x01\x02binary junk\xff"
    (settings.raw_data_dir / "junk.csv").write_bytes(content)
    outcome, result, claimed = _ingest(settings)
    assert outcome.outcome == "unreadable"
    assert result.quarantined
    assert (settings.bad_data_dir / output_name("junk.csv", content)).read_bytes() == content
    assert not claimed.path.exists()


def test_good_rows_drop_an_unexpected_column_so_the_prediction_job_can_send_them(
    settings: IngestionSettings,
) -> None:
    frame = dataset_rows(10)
    frame["loyalty_points"] = "7"
    write_csv(frame, settings.raw_data_dir, "extra.csv")
    _, result, _ = _ingest(settings)
    assert list(_read(result.good_path).columns) == [IDENTIFIER, *FEATURE_NAMES]


def test_a_file_changed_after_validation_moves_nothing(settings: IngestionSettings) -> None:
    write_csv(dataset_rows(10), settings.raw_data_dir, "changing.csv")
    claimed = _claim(settings)
    outcome = validate_customer_file(claimed.path)
    dataset_rows(11).to_csv(claimed.path, index=False)
    with pytest.raises(RowsNotConservedError):
        split_good_bad_rows(
            claimed, outcome, good_data_dir=settings.good_data_dir, bad_data_dir=settings.bad_data_dir,
        )
    assert claimed.path.exists()
    assert not settings.good_data_dir.exists()


def test_a_claim_recovered_by_a_later_run_is_not_split_twice(settings: IngestionSettings) -> None:
    write_csv(dataset_rows(10), settings.raw_data_dir, "slow.csv")
    claimed = _claim(settings)
    outcome = validate_customer_file(claimed.path, file_name=claimed.original_name)
    recover_stale_claims(settings.raw_data_dir, settings.claims_dir, 0)  # the run was too slow
    with pytest.raises(ClaimLostError, match=r"slow\.csv"):
        split_good_bad_rows(
            claimed, outcome, good_data_dir=settings.good_data_dir, bad_data_dir=settings.bad_data_dir,
        )
    assert not settings.good_data_dir.exists()
    assert waiting_raw_files(settings.raw_data_dir) == [settings.raw_data_dir / "slow.csv"]


def test_a_failed_write_keeps_the_claim_and_a_rerun_replaces_the_outputs(settings: IngestionSettings) -> None:
    frame = dataset_rows(20)
    frame.loc[[1, 2], "tenure"] = "-1"
    write_csv(frame, settings.raw_data_dir, "mixed.csv")
    claimed = _claim(settings)
    outcome = validate_customer_file(claimed.path)
    settings.bad_data_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.bad_data_dir.write_text("not a folder")  # the bad-data write fails
    with pytest.raises(OSError):
        split_good_bad_rows(
            claimed, outcome, good_data_dir=settings.good_data_dir, bad_data_dir=settings.bad_data_dir,
        )
    assert claimed.path.exists()  # nothing lost: the next attempt has the file
    settings.bad_data_dir.unlink()
    result = split_good_bad_rows(
        claimed, outcome, good_data_dir=settings.good_data_dir, bad_data_dir=settings.bad_data_dir,
    )
    # replaced, no temporaries
    assert [p.name for p in settings.good_data_dir.iterdir()] == [result.good_path.name]
    assert result.good_path.name.startswith("mixed.") and result.good_path.suffix == ".csv"
    assert (result.good_rows, result.bad_rows) == (18, 2)
    assert not claimed.path.exists()


def test_rows_are_conserved_over_many_randomly_injected_files(settings: IngestionSettings) -> None:
    folders = DataFolderSettings(
        raw_data_dir=settings.raw_data_dir, good_data_dir=settings.good_data_dir,
        bad_data_dir=settings.bad_data_dir,
    )
    paths = split_dataset(DATASET_PATH, settings.raw_data_dir, 24, seed=11, folders=folders)
    injections = inject_errors(settings.raw_data_dir, share=0.75, seed=11, row_share=0.2)
    assert len({i.injection.error_type for i in injections if i.injection}) == len(ErrorType)
    before = {p.name: p.read_bytes() for p in paths}
    read_rows = good_rows = bad_rows = 0
    while waiting_raw_files(settings.raw_data_dir):
        outcome, result, _ = _ingest(settings)
        read_rows += outcome.rows
        good_rows += result.good_rows
        bad_rows += result.bad_rows
        assert (result.good_rows, result.bad_rows) == (outcome.valid_rows, outcome.invalid_rows)
        if not outcome.readable:
            assert result.bad_path.read_bytes() == before[outcome.file_name]
    expected_ids = sorted(i for content in before.values() for i in _ids_of(content))
    outputs = [*settings.good_data_dir.glob("*.csv"), *settings.bad_data_dir.glob("*.csv")]
    written_ids = sorted(i for path in outputs for i in _written_ids(path))
    assert read_rows == len(expected_ids) == good_rows + bad_rows
    assert written_ids == expected_ids
    assert good_rows > 0 and bad_rows > 0
    assert list(settings.claims_dir.iterdir()) == []


def _ids_of(content: bytes) -> list[str]:
    """The customer ids of a raw file as the one reader reads it ([] when it is unreadable)."""
    try:
        table = read_customer_file(content, record_json_schema())
    except UnreadableFileError:
        return []
    return [row.cells.get(IDENTIFIER) or row.raw[0] for row in table.rows]


def _written_ids(path: Path) -> list[str]:
    """The ids in an output: the column, or the first raw field of a malformed row."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return []  # a quarantined unreadable file
    if IDENTIFIER not in frame.columns:
        return []
    raw = frame[RAW_COLUMN] if RAW_COLUMN in frame.columns else pd.Series([""] * len(frame))
    return [i or r.split(",")[0] for i, r in zip(frame[IDENTIFIER], raw, strict=True)]
