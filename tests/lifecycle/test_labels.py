"""Label files: validated, stored once, set aside when bad or contradictory, joined to a prediction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from core.settings import LabelSettings
from db import predictions as stored_predictions
from db import session as db_session
from db.labels import labelled_predictions
from db.session import session_scope
from jobs.labels import (
    ingest_label_file,
    parse_known_at,
    read_label_file,
    validate_labels,
)
from jobs.splitting import output_name
from tests.factories import customer_record

T = datetime(2026, 3, 1, tzinfo=UTC)
END_OF_DAY = datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)


def stored_name(path: Path, content: str | bytes) -> str:
    """The name a label file's processed copy and bad rows get: `<stem>.<sha256[:12]>.csv`."""
    return output_name(path.name, content.encode() if isinstance(content, str) else content)


def _predict(customer: str, at: str, label: int = 0, version: str = "v-test") -> int:
    with db_session.session_scope() as session:
        (id_,) = stored_predictions.create_predictions(
            session=session, source="scheduled", records=[customer_record(customer_id=customer)],
            labels=[label], probabilities=[0.7 if label else 0.2], model_version=version,
            created_at=datetime.fromisoformat(at)).ids
    return id_


def _labels() -> list[dict[str, Any]]:
    with db_session.get_engine().connect() as connection:
        rows = connection.execute(
            text("SELECT customer_id, churn, known_at, prediction_id FROM labels ORDER BY id"))
        return [dict(r) for r in rows.mappings()]


@pytest.fixture
def settings(tmp_path: Path) -> LabelSettings:
    folder = tmp_path / "labels"
    folder.mkdir()
    return LabelSettings(labels_dir=folder, labels_bad_dir=tmp_path / "bad_labels")


def _drop(settings: LabelSettings, name: str, content: str) -> Path:
    path = settings.labels_dir / name
    path.write_text(content)
    return path


def test_a_label_judges_the_latest_prediction_before_it_was_known(
    clean_db: str, settings: LabelSettings,
) -> None:
    _predict("C1", "2026-02-01T00:00:00+00:00")
    second = _predict("C1", "2026-02-20T00:00:00+00:00", label=1)
    _predict("C1", "2026-03-05T00:00:00+00:00")  # made after the outcome was known: not judged
    content = "customer_id,churn,known_at\nC1,Yes,2026-03-01\nC9,No,2026-03-01\n"
    path = _drop(settings, "labels_a.csv", content)
    report = ingest_label_file(path, settings=settings)
    assert (report.rows, report.stored, report.matched, report.invalid) == (2, 2, 1, 0)
    assert report.outcome == "good" and report.bad_file is None
    assert report.notes == [
        "2 date-only known_at values: each judges the predictions made up to the end of that day in "
        "UTC (LABELS_TIMEZONE)", "1 of 2 new labels matched no prediction"]
    assert [(r["customer_id"], r["churn"], r["prediction_id"]) for r in _labels()] == [
        ("C1", 1, second), ("C9", 0, None)]
    assert not path.exists() and (settings.processed_dir / stored_name(path, content)).exists()
    with session_scope() as session:
        judged = labelled_predictions(session=session)
    assert judged["prediction_id"].tolist() == [second] and judged["outcome"].tolist() == [1]


def test_invalid_rows_are_set_aside_with_their_reasons(clean_db: str, settings: LabelSettings) -> None:
    content = ("customer_id,churn,known_at\n"
               "C1,Yes,2026-03-01\n,No,2026-03-01\nC3,maybe,2026-03-01\nC4,No,yesterday\nC5,No,2999-01-01\n")
    path = _drop(settings, "labels_b.csv", content)
    report = ingest_label_file(path, settings=settings)
    assert (report.rows, report.stored, report.invalid, report.outcome) == (5, 1, 4, "mixed")
    assert report.bad_file == str(settings.labels_bad_dir / stored_name(path, content))
    bad = pd.read_csv(report.bad_file, dtype=str, keep_default_na=False)
    assert bad["_errors"].tolist()[:3] == ["missing_value:customer_id", "unknown_category:churn",
                                           "wrong_type:known_at"]
    assert bad["_errors"].iloc[3].startswith("out_of_range:known_at (future: the date 2999-01-01 is after today")
    assert "in UTC (LABELS_TIMEZONE); server clock 20" in bad["_errors"].iloc[3]
    assert bad["customer_id"].tolist() == ["", "C3", "C4", "C5"]


def test_duplicates_are_stored_once_and_contradictions_set_aside(
    clean_db: str, settings: LabelSettings,
) -> None:
    first = _drop(settings, "labels_c1.csv", "customer_id,churn,known_at\n"
                  "C1,Yes,2026-03-01\nC1,Yes,2026-03-01\nC2,Yes,2026-03-01\nC2,No,2026-03-01\n")
    report = ingest_label_file(first, settings=settings)
    assert (report.stored, report.duplicates, report.contradictory, report.invalid) == (1, 1, 2, 0)
    later = _drop(settings, "labels_c2.csv", "customer_id,churn,known_at\n"
                  "C1,Yes,2026-03-01T00:00:00Z\nC1,No,2026-03-01T00:00:00+00:00\n")
    # in-file these two contradict each other: both set aside, nothing stored
    report = ingest_label_file(later, settings=settings)
    assert (report.stored, report.contradictory) == (0, 2)
    third = _drop(settings, "labels_c3.csv", "customer_id,churn,known_at\nC1,No,2026-03-01\n")
    report = ingest_label_file(third, settings=settings)
    # against the stored label (Yes), a No is contradictory: the stored one stays
    assert (report.stored, report.contradictory, report.duplicates) == (0, 1, 0)
    assert report.bad_file is not None
    bad = pd.read_csv(report.bad_file, dtype=str)
    assert bad["_errors"].tolist() == ["contradictory_label:churn (stored label: Yes)"]
    assert [(r["customer_id"], r["churn"]) for r in _labels()] == [("C1", 1)]


def test_a_file_ingested_twice_is_stored_once(clean_db: str, settings: LabelSettings) -> None:
    content = "customer_id,churn,known_at\nC1,Yes,2026-03-01\n"
    ingest_label_file(_drop(settings, "labels_d.csv", content), settings=settings)
    again = ingest_label_file(_drop(settings, "labels_d.csv", content), settings=settings)
    assert again.already_ingested and again.stored == 1
    assert len(_labels()) == 1


def test_unreadable_and_missing_column_files(clean_db: str, settings: LabelSettings) -> None:
    not_labels = "name,score\nA,1\n"
    report = ingest_label_file(_drop(settings, "labels_e.csv", not_labels), settings=settings)
    assert report.outcome == "unreadable" and report.stored == 0  # the header names no label column
    assert (settings.labels_bad_dir / stored_name(Path("labels_e.csv"), not_labels)).read_text() == not_labels
    no_time = _drop(settings, "labels_g.csv", "customer_id,churn\nC1,Yes\n")
    report = ingest_label_file(no_time, settings=settings)
    assert (report.outcome, report.invalid) == ("bad", 1)
    assert report.bad_file is not None
    bad = pd.read_csv(report.bad_file, dtype=str)
    assert bad["_errors"].tolist() == ["missing_column:known_at"]
    binary = settings.labels_dir / "labels_f.csv"
    binary.write_bytes(b"\x00\x01\x02")
    report = ingest_label_file(binary, settings=settings)
    assert report.outcome == "unreadable"
    assert (settings.labels_bad_dir / stored_name(binary, b"\x00\x01\x02")).read_bytes() == b"\x00\x01\x02"


def test_validation_rules_without_a_database() -> None:
    frame = read_label_file_from_text("customer_id,churn\nC1,Yes\n")
    checked = validate_labels(frame)
    assert checked.invalid == {0: ["missing_column:known_at"]}
    assert parse_known_at("2026-03-01") == END_OF_DAY  # the whole day
    assert parse_known_at("2026-03-01T01:00:00+01:00") == T
    assert parse_known_at("2026-03-01T00:00:00") == T  # no offset: UTC by default


def read_label_file_from_text(content: str, tmp: Path = Path("/tmp")) -> pd.DataFrame:
    path = tmp / f"labels-{id(content)}.csv"
    path.write_text(content)
    try:
        return read_label_file(path)
    finally:
        path.unlink()


def test_label_files_are_read_by_the_one_reader_of_customer_files(
    clean_db: str, settings: LabelSettings,
) -> None:
    """A `;` export with CRLF, a blank line, spaced header names and an "NA" id, plus one row with
    a field too many: the row is set aside with the reader's reason and its raw fields, the others
    are stored, row numbers as a spreadsheet shows them."""
    path = settings.labels_dir / "labels_semicolon.csv"
    content = (b"\r\nCustomer ID ; Churn ; Known At\r\nNA;Yes;2026-03-01\r\nC2;No;2026-03-01;extra\r\n"
               b"C3;No;2026-03-02\r\n")
    path.write_bytes(content)
    report = ingest_label_file(path, settings=settings)
    assert (report.rows, report.stored, report.invalid) == (3, 2, 1)
    assert [(r["customer_id"], r["churn"]) for r in _labels()] == [("NA", 1), ("C3", 0)]
    bad = pd.read_csv(settings.labels_bad_dir / stored_name(path, content), dtype=str, keep_default_na=False)
    assert bad["_errors"].tolist() == ["malformed_row:row"]
    assert bad["_row"].tolist() == ["4"] and bad["_raw"].tolist() == ["C2;No;2026-03-01;extra"]
    assert "4 fields" in bad["_reader_problem"].iloc[0] and "header 3" in bad["_reader_problem"].iloc[0]
