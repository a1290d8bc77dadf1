"""The prediction ledger (table `predicted_files`): which good_data files were scored, by content.

A file is known by its name and the SHA-256 of its bytes: the same name with other content is a
new version, to be scored again. The prediction job enters a file only after the API stored
every row of it, so a file in the ledger is never scored twice and a file missing from it is
scored on the next run. Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from db.models import PredictedFile


def find_predicted_files(*, session: Session, file_names: Collection[str]) -> set[tuple[str, str]]:
    """The (file name, checksum) pairs the ledger holds for these names (any of their versions)."""
    if not file_names:
        return set()
    rows = session.execute(
        select(PredictedFile.file_name, PredictedFile.checksum).where(
            PredictedFile.file_name.in_(list(file_names))
        )
    ).tuples()
    return set(rows)


def record_predicted_file(*, session: Session, file_name: str, checksum: str, rows: int) -> None:
    """Enter one version of a file (`checksum`: SHA-256 hex of its bytes) with its row count.

    A version already in the ledger stays as it is: a rerun changes nothing.
    """
    session.execute(
        pg_insert(PredictedFile)
        .values(file_name=file_name, checksum=checksum, rows=rows)
        .on_conflict_do_nothing(constraint="uq_predicted_files_name_checksum")
    )
