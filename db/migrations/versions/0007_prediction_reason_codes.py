"""reason codes stored with each prediction

The top three feature contributions to the logit (model/reasons.py), as typed columns rather than
JSONB: the drift dashboard counts top reasons per time window over millions of rows, which a
plain text column serves with a GROUP BY and no JSON parsing. `rest_contribution` is the sum of
every other feature's contribution, so that the three contributions, the rest and the model's
intercept add up to the logit of `churn_probability`. Rows stored before this migration keep
NULLs (they were scored without reasons).

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = (1, 2, 3)


def upgrade() -> None:
    for slot in SLOTS:
        op.add_column("predictions", sa.Column(f"reason_{slot}_feature", sa.Text(), nullable=True))
        op.add_column("predictions", sa.Column(f"reason_{slot}_contribution", sa.Double(), nullable=True))
    op.add_column("predictions", sa.Column("rest_contribution", sa.Double(), nullable=True))


def downgrade() -> None:
    op.drop_column("predictions", "rest_contribution")
    for slot in reversed(SLOTS):
        op.drop_column("predictions", f"reason_{slot}_contribution")
        op.drop_column("predictions", f"reason_{slot}_feature")
