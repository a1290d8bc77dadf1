"""Scheduled predictions: every good_data file scored once, through the API, recorded in a ledger.

Exactly once per file: a file is known by its name and the SHA-256 of its bytes. It enters the
ledger (`predicted_files`) only after the API has stored every chunk of its rows, and each chunk
carries an idempotency key (`<file>:<checksum>:<chunk>`), so a run that fails halfway and is
retried stores no row twice. Files in good_data are only read, never moved or changed.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from core.api_client import ApiRejectedError, ChurnApiClient
from core.error_types import ErrorType
from core.files import UnreadableFileError, list_visible_files
from core.settings import PredictionJobSettings
from db.ledger import find_predicted_files, record_predicted_file
from db.session import session_scope
from model.contract import FEATURES, IDENTIFIER

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GoodDataFile:
    """A good_data file as the ledger knows it: its name and the checksum of its bytes."""

    path: Path
    checksum: str

    @property
    def name(self) -> str:
        return self.path.name


class FilesNotPredictedError(RuntimeError):
    """Files that no retry can predict (unreadable, or refused by the API); the others were predicted."""


def file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_unpredicted_files(good_dir: Path, session: Session) -> list[GoodDataFile]:
    """The good_data files whose (name, checksum) the ledger does not hold yet."""
    files = [GoodDataFile(path, file_checksum(path)) for path in list_visible_files(good_dir)]
    if not files:
        return []
    predicted = find_predicted_files(session=session, file_names=[f.name for f in files])
    return [f for f in files if (f.name, f.checksum) not in predicted]


def read_prediction_records(data: bytes, file_name: str) -> list[dict[str, Any]]:
    """The rows of a good_data CSV as API records: customer_id kept, the label dropped, blanks None.

    Values are converted by the contract's types because the API's numbers are strict (12, not
    "12" nor 12.0 for an integer feature).
    """
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=True)
    except ValueError as error:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise UnreadableFileError(
            ErrorType.UNREADABLE_FILE, f"{file_name}: not a readable CSV ({error})"
        ) from error
    missing = [f.name for f in FEATURES if f.required and f.name not in frame.columns]
    if missing:
        raise UnreadableFileError(ErrorType.UNREADABLE_FILE, f"{file_name}: missing columns {missing}")
    columns = [name for name in (IDENTIFIER, *(f.name for f in FEATURES)) if name in frame.columns]
    converters: dict[str, Callable[[str], Any]] = {
        IDENTIFIER: str, **{f.name: _CONVERTERS[f.dtype] for f in FEATURES},
    }
    records = []
    for row_number, row in enumerate(frame[columns].itertuples(index=False, name=None), start=1):
        try:
            records.append({
                name: None if _is_blank(value) else converters[name](value)
                for name, value in zip(columns, row, strict=True)
            })
        except ValueError as error:
            raise UnreadableFileError(
                ErrorType.UNREADABLE_FILE, f"{file_name}, data row {row_number}: {error}"
            ) from error
    return records


def _to_int(value: str) -> int:
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"{value!r} is not an integer")
    return int(number)


_CONVERTERS: dict[str, Callable[[str], Any]] = {"str": str, "int": _to_int, "float": float}


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def chunks(records: Sequence[dict[str, Any]], size: int) -> Iterator[tuple[int, Sequence[dict[str, Any]]]]:
    for index, start in enumerate(range(0, len(records), size)):
        yield index, records[start:start + size]


def predict_file(
    path: Path, client: ChurnApiClient, chunk_size: int, expected_checksum: str | None = None,
) -> int:
    """Send every row of one file to the API in chunks, then record the file; returns its row count.

    The bytes are read once: the checksum and the rows come from the same read, so the ledger
    never names a version of the file other than the one scored. A file that changed since
    `check_for_new_data` is scored under its new checksum (a new version of it).
    """
    data = path.read_bytes()
    file = GoodDataFile(path, hashlib.sha256(data).hexdigest())
    if expected_checksum and expected_checksum != file.checksum:
        log.warning("%s changed since it was listed; scoring its current content", file.name)
    records = read_prediction_records(data, file.name)
    for index, chunk in chunks(records, chunk_size):
        client.predict(
            chunk, source="scheduled", file_name=file.name, batch_key=f"{file.name}:{file.checksum}:{index}",
        )
    # only now, with every row stored by the API, does the file count as predicted
    with session_scope() as session:
        record_predicted_file(session=session, file_name=file.name, checksum=file.checksum, rows=len(records))
    log.info("%s: %d rows predicted in chunks of %d", file.name, len(records), chunk_size)
    return len(records)


def check_for_new_data(settings: PredictionJobSettings | None = None) -> list[dict[str, str]]:
    """The files to predict, as XCom-friendly dicts (name, checksum); empty when there is none."""
    settings = settings or PredictionJobSettings()
    with session_scope() as session:
        files = find_unpredicted_files(settings.good_data_dir, session)
    return [{"file_name": f.name, "checksum": f.checksum} for f in files]


def make_predictions(files: Sequence[dict[str, str]], settings: PredictionJobSettings | None = None) -> int:
    """Predict every listed file; returns the rows predicted.

    A file that cannot be predicted as it is (unreadable, or its rows refused by the API) does
    not hold the others back: they are predicted, then FilesNotPredictedError names it. The API
    down or failing stops at once with ApiUnavailableError (the next files would fail the same way).
    """
    settings = settings or PredictionJobSettings()
    client = ChurnApiClient(settings.api_url, settings.token_value(), settings.api_timeout_seconds)
    rows, not_predicted = 0, []
    try:
        for listed in files:
            path = settings.good_data_dir / listed["file_name"]
            if not path.exists():  # removed by hand since it was listed: nothing left to predict
                log.warning("%s is gone from %s; not predicted", path.name, settings.good_data_dir)
                continue
            try:
                rows += predict_file(path, client, settings.predict_chunk_size, listed.get("checksum"))
            except UnreadableFileError as error:
                not_predicted.append(str(error))
            except ApiRejectedError as error:
                not_predicted.append(f"{path.name}: {error}")
    finally:
        client.close()
    if not_predicted:
        raise FilesNotPredictedError("; ".join(not_predicted))
    return rows
