"""scripts/inject_errors.py: each error type changes what it says and nothing else; runs reproduce."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.error_types import ErrorType
from core.settings import REPO_ROOT, DataFolderSettings
from model.contract import FEATURE_NAMES, FEATURES_BY_NAME, IDENTIFIER, REQUIRED_COLUMNS, check_record
from model.data import DATASET_PATH
from scripts import inject_errors as inject
from scripts.split_dataset import split_dataset
from tests.scripts.helpers import snapshot

CELL_LEVEL = (
    ErrorType.MISSING_VALUE, ErrorType.UNKNOWN_CATEGORY, ErrorType.OUT_OF_RANGE,
    ErrorType.WRONG_TYPE, ErrorType.INCONSISTENT_VALUES,
)
ROWS = [0, 3, 4, 10, 57, 120, 199]


@pytest.fixture(scope="module")
def raw_content() -> bytes:
    """A raw file as the split writes it: the dataset's first 200 customers, label dropped."""
    frame = pd.read_csv(DATASET_PATH, dtype=str, keep_default_na=False).head(200)
    return frame.drop(columns=["churn"]).to_csv(index=False).encode()


@pytest.fixture
def raw_frame(raw_content: bytes) -> pd.DataFrame:
    return inject.read_raw_frame(raw_content)


@pytest.fixture
def typed_frame(dataset: pd.DataFrame) -> pd.DataFrame:
    return dataset.head(200).reset_index(drop=True)


def changed_cells(before: pd.DataFrame, after: pd.DataFrame) -> set[tuple[int, str]]:
    """Every (row, column) whose value differs, comparing the two frames cell by cell."""
    assert list(before.columns) == list(after.columns) and len(before) == len(after)
    return {
        (row, column)
        for column in before.columns
        for row, (old, new) in enumerate(zip(before[column], after[column], strict=True))
        if not (old == new or (pd.isna(old) and pd.isna(new)))
    }


def plain(record: dict[str, Any]) -> dict[str, Any]:
    """numpy scalars to Python ones, NaN to None, as the API would receive them."""
    out = {}
    for key, value in record.items():
        value = value.item() if isinstance(value, np.generic) else value
        out[key] = None if isinstance(value, float) and np.isnan(value) else value
    return out


def test_every_error_type_has_a_documented_injector() -> None:
    assert set(inject.INJECTORS) == set(ErrorType)
    for error_type, function in inject.INJECTORS.items():
        assert function.__name__ == error_type.value
        assert function.__doc__ and len(function.__doc__.split()) >= 8, error_type


def test_raw_frame_writes_back_byte_for_byte(raw_content: bytes) -> None:
    assert inject.frame_to_bytes(inject.read_raw_frame(raw_content)) == raw_content


@pytest.mark.parametrize("error_type", CELL_LEVEL)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cell_faults_change_exactly_the_cells_they_name(
    error_type: ErrorType, seed: int, raw_frame: pd.DataFrame,
) -> None:
    before = raw_frame.copy()
    after, injection = inject.INJECTORS[error_type](raw_frame, np.random.default_rng(seed), ROWS)
    pd.testing.assert_frame_equal(raw_frame, before)  # the input is never modified
    assert injection.error_type == error_type
    assert changed_cells(before, after) == set(injection.cells)
    assert set(injection.rows) == {r for r, _ in injection.cells}
    assert set(injection.columns) == {c for _, c in injection.cells}
    tenure_zero = {r for r in ROWS if before["tenure"].iloc[r] == "0"}
    assert set(injection.rows) == set(ROWS) - (tenure_zero if error_type == ErrorType.INCONSISTENT_VALUES
                                                else set())
    assert IDENTIFIER not in injection.columns


@pytest.mark.parametrize("error_type", CELL_LEVEL)
def test_cell_faults_break_the_contract_as_named(error_type: ErrorType, typed_frame: pd.DataFrame) -> None:
    """On typed frames the contract's own check flags exactly the touched rows and columns."""
    after, injection = inject.INJECTORS[error_type](typed_frame, np.random.default_rng(5), ROWS)
    assert changed_cells(typed_frame, after) == set(injection.cells)
    expected_reason = {
        ErrorType.MISSING_VALUE: "missing value", ErrorType.UNKNOWN_CATEGORY: "is not one of",
        ErrorType.OUT_OF_RANGE: "the m", ErrorType.WRONG_TYPE: "expected a number",
        ErrorType.INCONSISTENT_VALUES: "far below",
    }[error_type]
    for row in range(len(after)):
        problems = check_record(plain(after[list(FEATURE_NAMES)].iloc[row].to_dict()))
        touched = {c for r, c in injection.cells if r == row}
        assert {column for column, _ in problems} == touched, (row, problems)
        assert all(expected_reason in reason for _, reason in problems), problems


def test_out_of_range_uses_negative_tenure_and_tenfold_monthly(typed_frame: pd.DataFrame) -> None:
    after, injection = inject.out_of_range(typed_frame, np.random.default_rng(0), range(200))
    maximum = FEATURES_BY_NAME["monthly_charges"].maximum
    for row, column in injection.cells:
        if column == "tenure":
            assert after[column].iloc[row] == -max(typed_frame[column].iloc[row], 1)
        else:
            assert after[column].iloc[row] == pytest.approx(typed_frame[column].iloc[row] * 10)
            assert after[column].iloc[row] > maximum
    assert {c for _, c in injection.cells} == {"tenure", "monthly_charges"}


def test_missing_column_removes_one_required_column_only(raw_frame: pd.DataFrame) -> None:
    after, injection = inject.missing_column(raw_frame, np.random.default_rng(1), ROWS)
    (column,) = injection.columns
    assert column in REQUIRED_COLUMNS
    pd.testing.assert_frame_equal(after, raw_frame.drop(columns=[column]))
    assert injection.rows == tuple(range(len(raw_frame)))


def test_unexpected_column_adds_one_unknown_column_only(raw_frame: pd.DataFrame) -> None:
    after, injection = inject.unexpected_column(raw_frame, np.random.default_rng(1), ROWS)
    (column,) = injection.columns
    assert column not in raw_frame.columns and column not in FEATURES_BY_NAME
    assert after[column].notna().all() and (after[column] != "").all()
    pd.testing.assert_frame_equal(after.drop(columns=[column]), raw_frame, check_dtype=False)


def test_duplicate_row_appends_exact_copies(raw_frame: pd.DataFrame) -> None:
    after, injection = inject.duplicate_row(raw_frame, np.random.default_rng(1), ROWS)
    n = len(raw_frame)
    assert injection.rows == tuple(range(n, n + len(ROWS)))
    pd.testing.assert_frame_equal(after.iloc[:n], raw_frame)
    pd.testing.assert_frame_equal(
        after.iloc[n:].reset_index(drop=True), raw_frame.iloc[ROWS].reset_index(drop=True),
    )
    assert after[IDENTIFIER].duplicated().sum() == len(ROWS)


def test_unreadable_file_hides_the_same_content(raw_content: bytes) -> None:
    """Every variant is refused by the one reader, naming it, yet undoing it gives back the file."""
    from core.reader import UnreadableFileError, read_customer_file
    from model.contract import record_json_schema

    def unzip(data: bytes) -> bytes:
        return zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.csv")

    def from_html(data: bytes) -> bytes:
        frame = pd.read_html(io.StringIO(data.decode()), header=0, keep_default_na=False)[0]
        return inject.frame_to_bytes(frame.astype(str))

    undo = {
        "gzip-compressed bytes": (gzip.decompress, "is gzip-compressed"),
        "an Excel workbook": (unzip, "is an Excel workbook (.xlsx)"),
        "an HTML page": (from_html, "is an HTML page"),
        "UTF-16 without a byte-order mark": (
            lambda b: b.decode("utf-16-le").encode("utf-8"), "holds a NUL byte at byte 1: UTF-16 text"),
    }
    seen = set()
    for seed in range(16):
        spoiled, injection = inject.unreadable_file(raw_content, np.random.default_rng(seed), [])
        seen.add(injection.detail)
        restore, named = undo[injection.detail]
        if injection.detail != "an HTML page":
            assert restore(spoiled) == raw_content
        assert injection.rows == tuple(range(200))
        with pytest.raises(UnreadableFileError) as refused:
            read_customer_file(spoiled, record_json_schema())
        assert refused.value.detail.startswith(named)
    assert seen == set(undo)


def test_malformed_rows_change_their_field_count_and_nothing_else(raw_content: bytes) -> None:
    spoiled, injection = inject.malformed_row(raw_content, np.random.default_rng(3), ROWS)
    assert injection.error_type == ErrorType.MALFORMED_ROW and injection.rows == tuple(ROWS)
    before = raw_content.decode().split("\n")
    after = spoiled.decode().split("\n")
    width = len(before[0].split(","))
    changed = [i - 1 for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]
    assert changed == ROWS
    assert {len(after[row + 1].split(",")) for row in ROWS} <= {width - 1, width + 1}
    assert all(after[row + 1].startswith(before[row + 1].rsplit(",", 1)[0]) for row in ROWS)


def test_empty_file_is_nothing_or_the_header(raw_content: bytes) -> None:
    header = raw_content.split(b"\n", 1)[0] + b"\n"
    seen = {}
    for seed in range(8):
        spoiled, injection = inject.empty_file(raw_content, np.random.default_rng(seed), [])
        seen[injection.detail] = spoiled
    assert seen == {"zero bytes": b"", "header line only": header}


@pytest.fixture
def raw_files(folders: DataFolderSettings) -> list[Path]:
    return split_dataset(DATASET_PATH, folders.raw_data_dir, 20, seed=1, folders=folders)


def test_a_share_of_files_and_rows_changes(raw_files: list[Path], folders: DataFolderSettings) -> None:
    before = {p.name: p.read_bytes() for p in raw_files}
    results = inject.inject_errors(folders.raw_data_dir, share=0.3, seed=4, row_share=0.05)
    assert len(results) == 6 and all(r.injection for r in results)
    changed = {p.name for p in raw_files if p.read_bytes() != before[p.name]}
    assert changed == {r.file.name for r in results}
    assert len({r.injection.error_type for r in results}) == 6  # types dealt without repeats
    for result in results:
        if result.injection.error_type in set(CELL_LEVEL) - {ErrorType.INCONSISTENT_VALUES}:
            assert len(result.injection.rows) == round(352 * 0.05)


def test_types_restrict_what_is_injected(raw_files: list[Path], folders: DataFolderSettings) -> None:
    results = inject.inject_errors(
        folders.raw_data_dir, share=1, seed=4, types=[ErrorType.DUPLICATE_ROW, ErrorType.EMPTY_FILE],
    )
    assert len(results) == 20
    assert {r.injection.error_type for r in results} == {ErrorType.DUPLICATE_ROW, ErrorType.EMPTY_FILE}


def test_same_seed_same_bytes_other_seed_other_bytes(raw_files: list[Path], tmp_path: Path) -> None:
    source = raw_files[0].parent
    copies = {name: tmp_path / name for name in ("a", "b", "c")}
    for folder in copies.values():
        shutil.copytree(source, folder)
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        inject.inject_errors(copies[name], share=0.5, seed=seed)
    assert snapshot(copies["a"]) == snapshot(copies["b"])
    assert snapshot(copies["a"]) != snapshot(copies["c"])


def run_main(argv: list[str]) -> int:
    try:
        return inject.main(argv)
    except SystemExit as stop:
        return int(stop.code or 0)


BAD_ARGUMENTS = {
    "missing folder": (["{missing}", "--share", "0.3"], "raw data folder not found"),
    "share above 1": (["{raw}", "--share", "1.5"], "--share must be between 0 and 1"),
    "negative share": (["{raw}", "--share", "-0.1"], "--share must be between 0 and 1"),
    "share not a number": (["{raw}", "--share", "lots"], "invalid float value"),
    "no share": (["{raw}"], "the following arguments are required: --share"),
    "zero row share": (["{raw}", "--share", "0.3", "--row-share", "0"], "--row-share must be above 0"),
    "negative seed": (["{raw}", "--share", "0.3", "--seed", "-3"], "non-negative"),
    "unknown type": (["{raw}", "--share", "0.3", "--types", "typo"], "unknown error type typo"),
    "no CSV files": (["{empty}", "--share", "0.3"], "no CSV file"),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_argument_gives_one_line_and_changes_nothing(
    case: str, raw_files: list[Path],
    folders: DataFolderSettings, tmp_path: Path, capsys: pytest.CaptureFixture,
) -> None:
    (tmp_path / "empty").mkdir()
    places = {"raw": folders.raw_data_dir, "missing": tmp_path / "nope", "empty": tmp_path / "empty"}
    template, message = BAD_ARGUMENTS[case]
    before = snapshot(tmp_path)
    assert run_main([arg.format(**places) for arg in template]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.startswith("inject_errors: error: ")
    assert snapshot(tmp_path) == before


def test_command_line_prints_what_it_did_to_which_file(
    raw_files: list[Path], folders: DataFolderSettings,
) -> None:
    before = {p.name: p.read_bytes() for p in raw_files}
    done = subprocess.run(
        [sys.executable, "scripts/inject_errors.py", str(folders.raw_data_dir), "--share", "0.2",
         "--seed", "3", "--types", "missing_value", "OUT_OF_RANGE"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("seed 3: 4 files changed")
    changed = sorted(p.name for p in raw_files if p.read_bytes() != before[p.name])
    assert sorted(line.split(":")[0] for line in lines[1:]) == changed
    assert all(("missing_value:" in line) or ("out_of_range:" in line) for line in lines[1:])
