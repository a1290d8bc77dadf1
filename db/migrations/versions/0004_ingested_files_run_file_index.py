"""index ingested_files by (dag_run_id, file_name)

save-statistics and send-alerts look their run's statistics row up by run id and file name
(a retried task reuses the row its first try committed); without an index every lookup scans a
table that grows by a row a minute.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_ingested_files_run_file", "ingested_files", ["dag_run_id", "file_name"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_ingested_files_run_file", table_name="ingested_files")
