"""Streaming ingestion (issue 25): validation and split chunk by chunk give the outcome and the
output bytes of one pass over the whole file, at any chunk size, and Great Expectations (on the
first rows) and the column-by-column checks of the same expectations (after them) agree."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jobs.validation
from core.error_types import ErrorType
from jobs.claim import claim_raw_file
from jobs.splitting import split_good_bad_rows
from jobs.validation import ValidationOutcome, validate_customer_file
from model.contract import IDENTIFIER
from scripts.inject_errors import inject_into_content
from tests.factories import dataset_rows

FAULTS = (ErrorType.OUT_OF_RANGE, ErrorType.WRONG_TYPE, ErrorType.UNKNOWN_CATEGORY,
          ErrorType.MISSING_VALUE, ErrorType.DUPLICATE_ROW, ErrorType.INCONSISTENT_VALUES)


@pytest.fixture(scope="module")
def dirty_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 customers with six kinds of row faults, a malformed row and a repeat across chunks."""
    rng = np.random.default_rng(7)
    content = dataset_rows(600).to_csv(index=False).encode()
    for fault in FAULTS:
        content, _ = inject_into_content(content, fault, rng, 0.03)
    lines = content.decode().splitlines()
    lines[300] += ",an extra field"  # malformed: kept as written in `_raw`
    first_id = lines[1].split(",")[0]
    lines.append(",".join([first_id, *lines[2].split(",")[1:]]))  # the first customer again, last
    path = tmp_path_factory.mktemp("chunks") / "dirty.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _split(source: Path, work: Path, outcome: ValidationOutcome, chunk_rows: int) -> dict[str, bytes]:
    raw = work / "raw-data"
    raw.mkdir(parents=True)
    shutil.copy(source, raw / source.name)
    claimed = claim_raw_file(raw, raw / ".claims", "test")
    assert claimed is not None
    split_good_bad_rows(claimed, outcome, good_data_dir=work / "good", bad_data_dir=work / "bad",
                        chunk_rows=chunk_rows)
    return {f"{p.parent.name}/{p.name}": p.read_bytes() for p in sorted(work.glob("*/*.csv"))}


def test_any_chunk_size_gives_the_outcome_and_the_outputs_of_one_pass(
    dirty_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    whole = validate_customer_file(dirty_file, chunk_rows=10_000)
    assert whole.invalid_rows > 60 and (ErrorType.MALFORMED_ROW, None) in whole.error_counts
    assert whole.row_errors[whole.rows - 1] == [(ErrorType.DUPLICATE_ROW, IDENTIFIER)]
    expected_outputs = _split(dirty_file, tmp_path / "whole", whole, 10_000)
    monkeypatch.setattr(jobs.validation, "GREAT_EXPECTATIONS_ROWS", 50)  # GX on 50 rows, columns after
    for chunk_rows in (7, 64, 599):
        chunked = validate_customer_file(dirty_file, chunk_rows=chunk_rows)
        assert chunked.row_errors == whole.row_errors, chunk_rows
        assert chunked.error_counts == whole.error_counts
        assert (chunked.rows, chunked.criticality, chunked.detail) == (
            whole.rows, whole.criticality, whole.detail)
        assert chunked.ge_result is not None and whole.ge_result is not None
        assert chunked.ge_result["statistics"] == pytest.approx(whole.ge_result["statistics"])
        for ours, theirs in zip(chunked.ge_result["results"], whole.ge_result["results"], strict=True):
            assert ours["success"] == theirs["success"]
            for key in ("element_count", "unexpected_count", "missing_count"):
                assert ours["result"].get(key) == theirs["result"].get(key), key
        assert _split(dirty_file, tmp_path / f"chunks{chunk_rows}", chunked, chunk_rows) == expected_outputs


def test_a_disagreement_with_great_expectations_stops_the_validation(
    dirty_file: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never_fails(config: object, typed: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(typed), dtype=bool)

    monkeypatch.setattr(jobs.validation, "_unexpected", never_fails)
    with pytest.raises(RuntimeError, match="Great Expectations failed rows"):
        validate_customer_file(dirty_file)
