"""one ingested_files row per (dag_run_id, file_name): a unique key instead of lock plus marker

save-statistics and send-alerts both write the statistics row of one file ingestion, in either
order and possibly retried; with a unique key on (dag_run_id, file_name) each does one upsert
(db/statistics.py), which replaces the advisory lock and the marker file in the reports folder.
The unique key's index serves the lookups 0004's index served, so that index goes.

Rows with no run id (NULL) are never equal to each other and stay as they are. Databases
written before the retry fix could hold several rows for one ingestion: they are merged into the
first one (alert_sent true when any copy recorded a delivered alert; the copies' error rows go
with them), so the key can be created and the dashboards stop counting the file twice.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUPLICATES = """
    SELECT dag_run_id, file_name, min(id) AS kept_id, bool_or(alert_sent) AS alerted
    FROM ingested_files WHERE dag_run_id IS NOT NULL
    GROUP BY dag_run_id, file_name HAVING count(*) > 1
"""


def upgrade() -> None:
    op.execute(sa.text(
        f"UPDATE ingested_files f SET alert_sent = true FROM ({DUPLICATES}) d"
        " WHERE f.id = d.kept_id AND d.alerted"
    ))
    op.execute(sa.text(  # ingestion_errors of the removed copies go with them (ON DELETE CASCADE)
        f"DELETE FROM ingested_files f USING ({DUPLICATES}) d"
        " WHERE f.dag_run_id = d.dag_run_id AND f.file_name = d.file_name AND f.id <> d.kept_id"
    ))
    op.drop_index("ix_ingested_files_run_file", table_name="ingested_files")
    op.create_unique_constraint(
        "uq_ingested_files_run_file", "ingested_files", ["dag_run_id", "file_name"]
    )


def downgrade() -> None:
    op.drop_constraint("uq_ingested_files_run_file", "ingested_files", type_="unique")
    op.create_index(
        "ix_ingested_files_run_file", "ingested_files", ["dag_run_id", "file_name"], unique=False
    )
