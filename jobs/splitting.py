"""Splitting a validated file: valid rows to good_data, invalid rows (with their reasons) to bad_data.

- all rows valid: one file in good_data; all invalid: one file in bad_data; mixed: one of each,
  both named after the raw file and its checksum (`output_name`: `customers.3f9a1c2b7d4e.csv`),
  so two different files sent under one name never replace each other's outputs. The rows are
  read again by the same reader as the validation (core/reader.py), columns under the contract's
  names. Bad rows keep every column plus `_errors` ("out_of_range:tenure;
  unknown_category:contract"), and a malformed row (field count unlike the header's) its fields as
  written in `_raw`. Good rows keep the contract's columns (and the customer id and label), so
  the prediction job can send them as they are.
- An unreadable or empty file goes to bad_data byte for byte (quarantined), to be looked at.
- Rows are conserved exactly: good + bad = the rows validated, or the split raises and nothing moves.
- Each output is written under a hidden temporary name and renamed into place, and only when all
  outputs are whole is the claimed file removed: a crash at any point loses nothing, and a rerun
  of the same bytes replaces the same outputs instead of adding new ones.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.collector import paused_cyclic_gc
from core.error_types import ErrorType
from core.files import atomic_writers, file_sha256
from jobs.claim import ClaimedFile, release_claim
from jobs.validation import (
    KNOWN_EXTRA_COLUMNS,
    Reason,
    ValidationOutcome,
    open_customer_table,
)
from model.contract import FEATURES_BY_NAME

log = logging.getLogger(__name__)

ERRORS_COLUMN = "_errors"
# a malformed row's fields, exactly as written, joined by the file's delimiter
RAW_COLUMN = "_raw"
OUTPUT_DIGEST_LENGTH = 12


class RowsNotConservedError(RuntimeError):
    """The file's rows no longer match what was validated; nothing was written or removed."""


class ClaimLostError(RuntimeError):
    """The claimed file was recovered by a later run (this one was too slow); that run owns it now."""


@dataclass(frozen=True)
class SplitResult:
    good_path: Path | None
    bad_path: Path | None
    good_rows: int
    bad_rows: int
    quarantined: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "good_path": str(self.good_path) if self.good_path else None,
            "bad_path": str(self.bad_path) if self.bad_path else None,
            "good_rows": self.good_rows,
            "bad_rows": self.bad_rows,
            "quarantined": self.quarantined,
        }


def split_good_bad_rows(
    claimed: ClaimedFile, outcome: ValidationOutcome, *, good_data_dir: Path, bad_data_dir: Path,
    chunk_rows: int | None = None, release: bool = True,
) -> SplitResult:
    """Write the valid rows to good_data and the invalid ones to bad_data, then drop the claim.

    The file is read again `chunk_rows` rows at a time (INGESTION_CHUNK_ROWS by default) and the
    outputs written as it goes, under hidden names renamed into place at the end: memory stays
    bounded by the chunk, and the outputs are the same bytes at any chunk size. `release` False
    leaves the claim to the caller (the ingestion job releases it once the statistics are stored
    too: `jobs.claim.finish_claim_step`).
    """
    if not claimed.path.exists():
        raise ClaimLostError(
            f"{claimed.path} is gone: the run took longer than CLAIM_TIMEOUT_SECONDS and a later run "
            f"recovered {claimed.original_name}, which it ingests instead; nothing written"
        )
    if not outcome.readable:
        result = _quarantine(claimed, bad_data_dir)
    else:
        with paused_cyclic_gc():
            result = _split_rows(claimed, outcome, good_data_dir, bad_data_dir, chunk_rows)
    if release:
        release_claim(claimed)
    log.info(
        "%s: %d good rows -> %s, %d bad rows -> %s", claimed.original_name,
        result.good_rows, result.good_path, result.bad_rows, result.bad_path,
    )
    return result


def format_reasons(reasons: list[Reason]) -> str:
    return "; ".join(f"{error_type}:{column or '*'}" for error_type, column in reasons)


def _quarantine(claimed: ClaimedFile, bad_data_dir: Path) -> SplitResult:
    target = bad_data_dir / output_name_of_digest(claimed.original_name, file_sha256(claimed.path))
    with atomic_writers([target]) as handles, claimed.path.open("rb") as source:
        shutil.copyfileobj(source, handles[target])
    return SplitResult(good_path=None, bad_path=target, good_rows=0, bad_rows=0, quarantined=True)


def _split_rows(
    claimed: ClaimedFile, outcome: ValidationOutcome, good_data_dir: Path, bad_data_dir: Path,
    chunk_rows: int | None,
) -> SplitResult:
    name = output_name_of_digest(claimed.original_name, file_sha256(claimed.path))
    stream = open_customer_table(claimed.path, chunk_rows=chunk_rows)
    good_path = good_data_dir / name if outcome.valid_rows else None
    bad_path = bad_data_dir / name if outcome.invalid_rows else None
    good_columns = [c for c in stream.columns if _is_known(c)]
    with_raw = any((ErrorType.MALFORMED_ROW, None) in reasons for reasons in outcome.row_errors.values())
    good_rows = bad_rows = seen = 0
    errors = outcome.row_errors
    bad_header = [*stream.columns, ERRORS_COLUMN, *([RAW_COLUMN] if with_raw else [])]
    # both outputs whole before the claim goes: written under hidden names, renamed at the end.
    # Rows go straight from the chunk's columns to the csv module's writer (the one pandas'
    # to_csv uses, same dialect: minimal quoting, "\n", None as empty): no frame is built.
    with atomic_writers([p for p in (good_path, bad_path) if p]) as handles:
        texts = {path: io.TextIOWrapper(handles[path], encoding="utf-8", newline="")
                 for path in (good_path, bad_path) if path}
        writers = {path: csv.writer(text, lineterminator="\n") for path, text in texts.items()}
        for chunk in stream.chunks():
            seen += len(chunk)
            if seen > outcome.rows:
                break
            valid = [p not in errors for p in range(chunk.start, chunk.start + len(chunk))]
            kept = sum(valid)
            if kept and good_path:
                if not good_rows:
                    writers[good_path].writerow(good_columns)
                rows = zip(*(chunk.cells[c] for c in good_columns), strict=True)
                writers[good_path].writerows(itertools.compress(rows, valid))
            good_rows += kept
            if kept < len(chunk) and bad_path:
                if not bad_rows:
                    writers[bad_path].writerow(bad_header)
                columns = [chunk.cells[c] for c in stream.columns]
                malformed = set(chunk.malformed)
                for k in (k for k, ok in enumerate(valid) if not ok):
                    row = [column[k] for column in columns]
                    row.append(format_reasons(errors[chunk.start + k]))
                    if with_raw:  # the fields of a row that did not match the header, as written
                        row.append(_raw_line(chunk.raw[k], stream.delimiter) if k in malformed else None)
                    writers[bad_path].writerow(row)
            bad_rows += len(chunk) - kept
        for text in texts.values():
            text.flush()
            text.detach()  # the atomic writer syncs and closes the file itself
        if seen != outcome.rows:
            raise RowsNotConservedError(
                f"{claimed.path.name} has {'more than ' if seen > outcome.rows else ''}{seen} rows "
                f"but {outcome.rows} were validated"
            )
        if (good_rows, bad_rows) != (outcome.valid_rows, outcome.invalid_rows):
            raise RowsNotConservedError(
                f"{good_rows} good + {bad_rows} bad != {outcome.valid_rows} + "
                f"{outcome.invalid_rows} validated"
            )
    return SplitResult(good_path=good_path, bad_path=bad_path, good_rows=good_rows, bad_rows=bad_rows)


def output_name(original_name: str, data: bytes) -> str:
    """The name of a raw file's outputs: its own name plus the start of its bytes' SHA-256.

    `customers.csv` -> `customers.3f9a1c2b7d4e.csv`. Two different files arriving under one name
    get different outputs (neither replaces the other's rows), while the same file ingested again
    after a crash gets the same names and replaces its own outputs (no row twice).
    """
    return output_name_of_digest(original_name, hashlib.sha256(data).hexdigest())


def output_name_of_digest(original_name: str, digest: str) -> str:
    """`output_name` from the SHA-256 (hex) of the file's bytes, computed by the caller."""
    original = Path(original_name)
    return f"{original.stem}.{digest[:OUTPUT_DIGEST_LENGTH]}{original.suffix}"


def _raw_line(fields: Sequence[str], delimiter: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(fields)
    return out.getvalue()


def _is_known(column: str) -> bool:
    return column in FEATURES_BY_NAME or column in KNOWN_EXTRA_COLUMNS
