"""index predictions by batch key

Replaying a batch key (a retried request) and the ON DELETE CASCADE from prediction_batches
look predictions up by batch_key; without an index both scan the whole table.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_predictions_batch_key", "predictions", ["batch_key"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_predictions_batch_key", table_name="predictions")
