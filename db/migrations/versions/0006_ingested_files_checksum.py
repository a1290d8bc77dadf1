"""ingested_files.checksum: one statistics row per file content, across crashes and recovered claims

A run that crashed after save-statistics leaves its claim behind; a later run recovers the file
and ingests it again under a new run id, so the (dag_run_id, file_name) key of 0005 let it store a
second row (the file's rows counted twice on the dashboards). The SHA-256 of the file's bytes
identifies the file whatever run ingests it: with a unique key on (file_name, checksum), every
ingestion of the same bytes upserts one row (db/statistics.py). Rows without a checksum (written
before this migration, or by the demo-history command) are not constrained.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ingested_files", sa.Column("checksum", sa.Text(), nullable=True))
    op.create_index(
        "uq_ingested_files_file_checksum", "ingested_files", ["file_name", "checksum"], unique=True,
        postgresql_where=sa.text("checksum IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_ingested_files_file_checksum", table_name="ingested_files")
    op.drop_column("ingested_files", "checksum")
