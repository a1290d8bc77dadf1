"""the model lifecycle: labels, label files, shadow predictions, promotion decisions, realized performance

Outcomes come back as label files (`label_files` statistics, `labels` rows joined to the
customer's latest prediction before the outcome was known); the challenger's scores are stored
apart (`shadow_predictions`); every promotion, rollback or gate verdict is a `promotion_decisions`
row; `realized_performance` holds each model version's metrics per window. Predictions get an
index by (customer_id, created_at): a label looks up its customer's latest prediction.
`model_versions.registry_version` is MLflow's version number of a model.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('label_files',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('file_name', sa.Text(), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('dag_run_id', sa.Text(), nullable=True),
    sa.Column('ingested_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('stored_rows', sa.Integer(), nullable=False),
    sa.Column('invalid_rows', sa.Integer(), nullable=False),
    sa.Column('duplicate_rows', sa.Integer(), nullable=False),
    sa.Column('contradictory_rows', sa.Integer(), nullable=False),
    sa.Column('matched_rows', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('errors', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.CheckConstraint("outcome IN ('good', 'bad', 'mixed', 'unreadable')", name='ck_label_files_outcome'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('file_name', 'checksum', name='uq_label_files_name_checksum')
    )
    op.create_index('ix_label_files_ingested_at', 'label_files', ['ingested_at'], unique=False)
    op.create_table('promotion_decisions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('champion_before', sa.Integer(), nullable=True),
    sa.Column('challenger', sa.Integer(), nullable=True),
    sa.Column('champion_after', sa.Integer(), nullable=True),
    sa.Column('metric', sa.Text(), nullable=True),
    sa.Column('champion_value', sa.Double(), nullable=True),
    sa.Column('challenger_value', sa.Double(), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('automatic', sa.Boolean(), nullable=False),
    sa.Column('decided_by', sa.Text(), nullable=False),
    sa.CheckConstraint("action IN ('register', 'promote', 'keep', 'reject', 'rollback')",
                       name='ck_promotion_decisions_action'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_promotion_decisions_decided_at', 'promotion_decisions', ['decided_at'], unique=False)
    op.create_table('realized_performance',
    sa.Column('model_version', sa.Text(), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('predictions', sa.Integer(), nullable=False),
    sa.Column('labelled', sa.Integer(), nullable=False),
    sa.Column('coverage', sa.Double(), nullable=False),
    sa.Column('positives', sa.Integer(), nullable=False),
    sa.Column('f1', sa.Double(), nullable=True),
    sa.Column('f1_low', sa.Double(), nullable=True),
    sa.Column('f1_high', sa.Double(), nullable=True),
    sa.Column('precision', sa.Double(), nullable=True),
    sa.Column('precision_low', sa.Double(), nullable=True),
    sa.Column('precision_high', sa.Double(), nullable=True),
    sa.Column('recall', sa.Double(), nullable=True),
    sa.Column('recall_low', sa.Double(), nullable=True),
    sa.Column('recall_high', sa.Double(), nullable=True),
    sa.Column('roc_auc', sa.Double(), nullable=True),
    sa.Column('roc_auc_low', sa.Double(), nullable=True),
    sa.Column('roc_auc_high', sa.Double(), nullable=True),
    sa.Column('brier', sa.Double(), nullable=True),
    sa.Column('training_f1', sa.Double(), nullable=True),
    sa.Column('computed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('model_version', 'window_start')
    )
    op.create_table('labels',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('churn', sa.SmallInteger(), nullable=False),
    sa.Column('known_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('label_file_id', sa.Integer(), nullable=False),
    sa.Column('prediction_id', sa.BigInteger(), nullable=True),
    sa.CheckConstraint('churn IN (0, 1)', name='ck_labels_churn'),
    sa.ForeignKeyConstraint(['label_file_id'], ['label_files.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('customer_id', 'known_at', name='uq_labels_customer_known_at')
    )
    op.create_index('ix_labels_prediction_id', 'labels', ['prediction_id'], unique=False)
    op.create_index('ix_labels_received_at', 'labels', ['received_at'], unique=False)
    op.create_table('shadow_predictions',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('prediction_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('model_version', sa.Text(), nullable=False),
    sa.Column('predicted_label', sa.SmallInteger(), nullable=False),
    sa.Column('churn_probability', sa.Double(), nullable=False),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('prediction_id', 'model_version',
                        name='uq_shadow_predictions_prediction_version')
    )
    op.create_index('ix_shadow_predictions_version_created_at', 'shadow_predictions',
                    ['model_version', 'created_at'], unique=False)
    op.add_column('model_versions', sa.Column('registry_version', sa.Integer(), nullable=True))
    op.create_index('ix_predictions_customer_created_at', 'predictions', ['customer_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_predictions_customer_created_at', table_name='predictions')
    op.drop_column('model_versions', 'registry_version')
    op.drop_index('ix_shadow_predictions_version_created_at', table_name='shadow_predictions')
    op.drop_table('shadow_predictions')
    op.drop_index('ix_labels_received_at', table_name='labels')
    op.drop_index('ix_labels_prediction_id', table_name='labels')
    op.drop_table('labels')
    op.drop_table('realized_performance')
    op.drop_index('ix_promotion_decisions_decided_at', table_name='promotion_decisions')
    op.drop_table('promotion_decisions')
    op.drop_index('ix_label_files_ingested_at', table_name='label_files')
    op.drop_table('label_files')
