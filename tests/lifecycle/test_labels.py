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
    assert bad["_errors"].iloc[3].startswith(
        "out_of_range:known_at (future: the date 2999-01-01 is after today")
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


# --- outcome times: LABELS_TIMEZONE, date-only values, "future" --------------------------------------

def _zone(settings: LabelSettings, zone: str) -> LabelSettings:
    return settings.model_copy(update={"labels_timezone": zone})


def test_tokyo_times_without_an_offset_are_read_in_labels_timezone(
    clean_db: str, settings: LabelSettings,
) -> None:
    """Outcomes written in Tokyo at 20:30 local (11:30 UTC), ingested at 20:35 local: read as UTC
    they lie 9 hours in the future and are set aside; read in Asia/Tokyo they judge the 20:00
    prediction, and the file's notes say how the times were read."""
    made = _predict("T1", "2026-03-01T11:00:00+00:00", label=1)  # 20:00 in Tokyo
    now = datetime(2026, 3, 1, 11, 35, tzinfo=UTC)
    content = "customer_id,churn,known_at\nT1,Yes,2026-03-01T20:30:00\n"
    as_utc = ingest_label_file(_drop(settings, "tokyo.csv", content), settings=settings, now=now)
    assert (as_utc.stored, as_utc.invalid) == (0, 1)
    assert as_utc.bad_file is not None
    reason = pd.read_csv(as_utc.bad_file, dtype=str)["_errors"].iloc[0]
    assert reason == ("out_of_range:known_at (future: 2026-03-01T20:30:00 read in UTC (LABELS_TIMEZONE) as "
                      "2026-03-01T20:30:00+00:00, later than the server clock 2026-03-01T11:35:00+00:00 "
                      "(2026-03-01T11:35:00+00:00 in UTC) by more than 5 minutes)")
    tokyo = _zone(settings, "Asia/Tokyo")
    report = ingest_label_file(_drop(tokyo, "tokyo_2.csv", content), settings=tokyo, now=now)
    assert (report.stored, report.matched, report.invalid, report.outcome) == (1, 1, 0, "good")
    assert report.notes == ["1 known_at times without an offset read in Asia/Tokyo (LABELS_TIMEZONE)"]
    assert [(r["prediction_id"], r["known_at"]) for r in _labels()] == [
        (made, datetime(2026, 3, 1, 11, 30, tzinfo=UTC))]
    with db_session.get_engine().connect() as connection:
        notes = connection.execute(
            text("SELECT notes FROM label_files WHERE file_name = 'tokyo_2.csv'")).scalar()
    assert notes == report.notes


def test_new_york_morning_outcomes_judge_that_mornings_prediction(
    clean_db: str, settings: LabelSettings,
) -> None:
    """07:00 in New York (12:00 UTC in March before DST): read as UTC it would judge the day
    before's prediction; read in America/New_York it judges the 06:30 local one."""
    yesterday = _predict("N1", "2026-03-01T15:00:00+00:00")
    morning = _predict("N1", "2026-03-02T11:30:00+00:00", label=1)  # 06:30 in New York
    content = "customer_id,churn,known_at\nN1,Yes,2026-03-02T07:00:00\n"
    ingest_label_file(_drop(settings, "ny_utc.csv", content), settings=settings)
    assert [r["prediction_id"] for r in _labels()] == [yesterday]  # the mistake the setting avoids
    with db_session.get_engine().begin() as connection:
        connection.execute(text("TRUNCATE labels, label_files CASCADE"))
    new_york = _zone(settings, "America/New_York")
    report = ingest_label_file(_drop(new_york, "ny.csv", content), settings=new_york)
    assert report.matched == 1
    assert [(r["prediction_id"], r["known_at"]) for r in _labels()] == [
        (morning, datetime(2026, 3, 2, 12, 0, tzinfo=UTC))]


def test_a_date_only_outcome_judges_that_whole_day_in_labels_timezone(
    clean_db: str, settings: LabelSettings,
) -> None:
    """`2026-03-01` judges the latest prediction of that day (22:00 UTC, not only those before
    00:00); today's date is not future, tomorrow's is, with a reason naming the zone and clock."""
    early = _predict("D1", "2026-03-01T01:00:00+00:00")
    late = _predict("D1", "2026-03-01T22:00:00+00:00", label=1)
    _predict("D2", "2026-03-01T02:00:00+00:00")
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # that day, at noon
    content = "customer_id,churn,known_at\nD1,Yes,2026-03-01\nD2,No,2026-03-02\n"
    report = ingest_label_file(_drop(settings, "dates.csv", content), settings=settings, now=now)
    assert (report.stored, report.invalid) == (1, 1)  # today is fine, tomorrow is future
    assert [r["prediction_id"] for r in _labels()] == [late]
    assert report.bad_file is not None
    reason = pd.read_csv(report.bad_file, dtype=str)["_errors"].iloc[0]
    assert reason == ("out_of_range:known_at (future: the date 2026-03-02 is after today (2026-03-01) in "
                      "UTC (LABELS_TIMEZONE); server clock 2026-03-01T12:00:00+00:00)")
    # in Tokyo, 1 March ends at 14:59:59 UTC: the 22:00 UTC prediction is already 2 March there
    with db_session.get_engine().begin() as connection:
        connection.execute(text("TRUNCATE labels, label_files CASCADE"))
    tokyo = _zone(settings, "Asia/Tokyo")
    ingest_label_file(_drop(tokyo, "dates_tokyo.csv", "customer_id,churn,known_at\nD1,Yes,2026-03-01\n"),
                      settings=tokyo, now=now)
    assert [r["prediction_id"] for r in _labels()] == [early]


def test_an_unknown_labels_timezone_is_refused_with_the_setting_named() -> None:
    with pytest.raises(ValueError, match="LABELS_TIMEZONE='Mars/Olympus' is not an IANA time zone"):
        LabelSettings(labels_timezone="Mars/Olympus")


# --- label rows never lost -------------------------------------------------------------------------

BLANK_LINES = ("customer_id,churn,known_at\n"  # line 1
               "\n"  # 2
               "B2,No,2026-03-01\n"  # 3
               "\n\n"  # 4, 5
               "B1,No,2026-03-01\n"  # 6: contradicts the stored label
               "B3,maybe,2026-03-01\n"  # 7
               "\n")


def test_blank_lines_anywhere_keep_row_numbers_and_set_aside_rows_right(
    clean_db: str, settings: LabelSettings,
) -> None:
    ingest_label_file(_drop(settings, "first.csv", "customer_id,churn,known_at\nB1,Yes,2026-03-01\n"),
                      settings=settings)
    report = ingest_label_file(_drop(settings, "blank.csv", BLANK_LINES), settings=settings)
    assert (report.rows, report.stored, report.contradictory, report.invalid) == (3, 1, 1, 1)
    assert report.bad_file is not None
    bad = pd.read_csv(report.bad_file, dtype=str, keep_default_na=False)
    assert list(zip(bad["_row"], bad["customer_id"], bad["_errors"], strict=True)) == [
        ("6", "B1", "contradictory_label:churn (stored label: Yes)"),
        ("7", "B3", "unknown_category:churn")]
    assert sorted((r["customer_id"], r["churn"]) for r in _labels()) == [("B1", 1), ("B2", 0)]


def test_a_failure_before_the_bad_rows_are_safe_records_nothing_and_the_retry_loses_no_row(
    clean_db: str, settings: LabelSettings,
) -> None:
    """The bad rows cannot be written (their folder is a file): the file's transaction rolls back,
    the file stays where it was; once the folder is fixed, the retry stores and sets aside every row."""
    ingest_label_file(_drop(settings, "first.csv", "customer_id,churn,known_at\nB1,Yes,2026-03-01\n"),
                      settings=settings)
    settings.labels_bad_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.labels_bad_dir.write_text("not a folder")
    path = _drop(settings, "blank.csv", BLANK_LINES)
    with pytest.raises(OSError):
        ingest_label_file(path, settings=settings)
    assert path.exists()
    with db_session.get_engine().connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM label_files WHERE file_name = 'blank.csv'")
                                  ).scalar() == 0
    assert [r["customer_id"] for r in _labels()] == ["B1"]
    settings.labels_bad_dir.unlink()
    retried = ingest_label_file(path, settings=settings)
    assert not retried.already_ingested
    assert (retried.stored, retried.contradictory, retried.invalid) == (1, 1, 1)
    assert retried.bad_file is not None
    assert pd.read_csv(retried.bad_file, dtype=str)["customer_id"].tolist() == ["B1", "B3"]
    again = ingest_label_file(_drop(settings, "blank.csv", BLANK_LINES), settings=settings)
    assert again.already_ingested and again.bad_file == retried.bad_file  # the record names its rows


def test_two_label_files_under_one_name_never_overwrite_each_other(
    clean_db: str, settings: LabelSettings,
) -> None:
    first = "customer_id,churn,known_at\nS1,Yes,2026-03-01\nS2,maybe,2026-03-01\n"
    second = "customer_id,churn,known_at\nS3,No,2026-03-01\nS4,perhaps,2026-03-01\n"
    one = ingest_label_file(_drop(settings, "labels.csv", first), settings=settings)
    two = ingest_label_file(_drop(settings, "labels.csv", second), settings=settings)
    assert one.bad_file != two.bad_file and one.bad_file and two.bad_file
    assert pd.read_csv(one.bad_file, dtype=str)["customer_id"].tolist() == ["S2"]
    assert pd.read_csv(two.bad_file, dtype=str)["customer_id"].tolist() == ["S4"]
    processed = sorted(p.name for p in settings.processed_dir.iterdir())
    assert processed == sorted(stored_name(Path("labels.csv"), c) for c in (first, second))
    assert (settings.processed_dir / stored_name(Path("labels.csv"), first)).read_text() == first


def test_a_file_matching_no_prediction_says_so(clean_db: str, settings: LabelSettings) -> None:
    _predict("M1", "2026-03-05T00:00:00+00:00")  # made after the outcome: judges nothing
    report = ingest_label_file(_drop(settings, "nobody.csv", "customer_id,churn,known_at\n"
                                     "M1,Yes,2026-03-01\nM2,No,2026-03-01\n"), settings=settings)
    assert (report.stored, report.matched, report.outcome) == (2, 0, "unmatched")
    assert report.notes[-1] == ("no new label matched a prediction (2 stored): no prediction of these "
                                "customers was made at or before their known_at")
    with db_session.get_engine().connect() as connection:
        assert connection.execute(text("SELECT outcome FROM label_files")).scalar() == "unmatched"
