"""settled outcomes and one retrain at a time: label-file notes, realized windows' settled flag, retrain attempts

`label_files` gets `notes` (what a reader of its statistics must know: the time zone of times
written without an offset, that no row matched a prediction...) and `bad_file` (the name of its
set-aside rows), and the outcome `unmatched`. `realized_performance.settled` marks the windows
whose outcomes are all in (decisions and alerts read those only). `promotion_decisions` gets the
actions `superseded` (a challenger displaced before the gate judged it) and `conflict` (an alias
moved under a decision: nothing changed). `retrain_attempts` records every retraining when it
starts: the retrain trigger counts labels since the latest one.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_OUTCOMES = "outcome IN ('good', 'bad', 'mixed', 'unreadable')"
NEW_OUTCOMES = "outcome IN ('good', 'bad', 'mixed', 'unreadable', 'unmatched')"
OLD_ACTIONS = "action IN ('register', 'promote', 'keep', 'reject', 'rollback')"
NEW_ACTIONS = "action IN ('register', 'promote', 'keep', 'reject', 'rollback', 'superseded', 'conflict')"


def upgrade() -> None:
    op.add_column('label_files', sa.Column('notes', postgresql.JSONB(astext_type=sa.Text()),
                                           server_default=sa.text("'[]'::jsonb"), nullable=False))
    op.add_column('label_files', sa.Column('bad_file', sa.Text(), nullable=True))
    op.drop_constraint('ck_label_files_outcome', 'label_files', type_='check')
    op.create_check_constraint('ck_label_files_outcome', 'label_files', NEW_OUTCOMES)
    op.drop_constraint('ck_promotion_decisions_action', 'promotion_decisions', type_='check')
    op.create_check_constraint('ck_promotion_decisions_action', 'promotion_decisions', NEW_ACTIONS)
    op.add_column('realized_performance', sa.Column('settled', sa.Boolean(),
                                                    server_default=sa.text('false'), nullable=False))
    op.create_table('retrain_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('started_by', sa.Text(), nullable=False),
    sa.Column('registry_version', sa.Integer(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.CheckConstraint("outcome IN ('running', 'registered', 'failed', 'conflict')",
                       name='ck_retrain_attempts_outcome'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_retrain_attempts_started_at', 'retrain_attempts', ['started_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_retrain_attempts_started_at', table_name='retrain_attempts')
    op.drop_table('retrain_attempts')
    op.drop_column('realized_performance', 'settled')
    op.execute("DELETE FROM promotion_decisions WHERE action IN ('superseded', 'conflict')")
    op.drop_constraint('ck_promotion_decisions_action', 'promotion_decisions', type_='check')
    op.create_check_constraint('ck_promotion_decisions_action', 'promotion_decisions', OLD_ACTIONS)
    op.execute("UPDATE label_files SET outcome = 'good' WHERE outcome = 'unmatched'")
    op.drop_constraint('ck_label_files_outcome', 'label_files', type_='check')
    op.create_check_constraint('ck_label_files_outcome', 'label_files', OLD_OUTCOMES)
    op.drop_column('label_files', 'bad_file')
    op.drop_column('label_files', 'notes')
