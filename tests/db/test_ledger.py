"""db/ledger.py: the prediction ledger knows a file by name and checksum, and records it once."""

from __future__ import annotations

from sqlalchemy import func, select

from db.ledger import find_predicted_files, record_predicted_file
from db.models import PredictedFile
from db.session import session_scope


def test_a_version_is_recorded_once_and_found_by_its_name(clean_db: str) -> None:
    with session_scope() as session:
        record_predicted_file(session=session, file_name="a.csv", checksum="1" * 64, rows=10)
    with session_scope() as session:  # a rerun of the same version changes nothing
        record_predicted_file(session=session, file_name="a.csv", checksum="1" * 64, rows=99)
        record_predicted_file(session=session, file_name="a.csv", checksum="2" * 64, rows=12)
        record_predicted_file(session=session, file_name="b.csv", checksum="3" * 64, rows=5)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(PredictedFile)) == 3
        assert session.scalar(select(PredictedFile.rows).where(PredictedFile.checksum == "1" * 64)) == 10
        assert find_predicted_files(session=session, file_names=["a.csv", "c.csv"]) == {
            ("a.csv", "1" * 64), ("a.csv", "2" * 64),
        }
        assert find_predicted_files(session=session, file_names=[]) == set()
