"""the drift reference is the model being served, not the model trained last

`model_versions.served_since`: when the API last began serving the version as champion (written
by the API on admission, api/serving.py). `drift_baseline_version()`, which every drift function
and the prediction-drift alert rule call for their reference, now returns the version served last;
only while no version was ever marked served does it fall back to the one loaded last (as before).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SERVED_FIRST = """
CREATE OR REPLACE FUNCTION drift_baseline_version(requested text DEFAULT NULL)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- the requested model version, or the one served last, or (none served yet) the one loaded last
    SELECT coalesce(requested, (
        SELECT model_version FROM model_versions
        ORDER BY served_since DESC NULLS LAST, loaded_at DESC, trained_at DESC LIMIT 1
    ))
$$;
"""

LOADED_LAST = """
CREATE OR REPLACE FUNCTION drift_baseline_version(requested text DEFAULT NULL)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- the requested model version, or the model loaded last
    SELECT coalesce(requested, (
        SELECT model_version FROM model_versions ORDER BY loaded_at DESC, trained_at DESC LIMIT 1
    ))
$$;
"""


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("served_since", sa.DateTime(timezone=True), nullable=True))
    op.execute(SERVED_FIRST)


def downgrade() -> None:
    op.execute(LOADED_LAST)
    op.drop_column("model_versions", "served_since")
