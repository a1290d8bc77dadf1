"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24 09:05:40.964921
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ingested_files',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('file_name', sa.Text(), nullable=False),
    sa.Column('dag_run_id', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ingested_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('valid_rows', sa.Integer(), nullable=False),
    sa.Column('invalid_rows', sa.Integer(), nullable=False),
    sa.Column('criticality', sa.String(length=8), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('report_url', sa.Text(), nullable=True),
    sa.Column('alert_sent', sa.Boolean(), nullable=True),
    sa.CheckConstraint("criticality IN ('none', 'low', 'medium', 'high')", name='ck_ingested_files_criticality'),
    sa.CheckConstraint("outcome IN ('good', 'bad', 'mixed', 'unreadable')", name='ck_ingested_files_outcome'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_ingested_files_ingested_at', 'ingested_files', ['ingested_at'], unique=False)
    op.create_table('model_versions',
    sa.Column('model_version', sa.Text(), nullable=False),
    sa.Column('trained_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('loaded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('metrics', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('threshold', sa.Double(), nullable=False),
    sa.Column('training_churn_rate', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('model_version')
    )
    op.create_table('predicted_files',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('file_name', sa.Text(), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('predicted_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('file_name', 'checksum', name='uq_predicted_files_name_checksum')
    )
    op.create_table('prediction_batches',
    sa.Column('batch_key', sa.Text(), nullable=False),
    sa.Column('file_name', sa.Text(), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('batch_key')
    )
    op.create_table('baseline_bins',
    sa.Column('model_version', sa.Text(), nullable=False),
    sa.Column('feature', sa.Text(), nullable=False),
    sa.Column('bin', sa.Integer(), nullable=False),
    sa.Column('lower', sa.Double(), nullable=True),
    sa.Column('upper', sa.Double(), nullable=True),
    sa.Column('category', sa.Text(), nullable=True),
    sa.Column('proportion', sa.Double(), nullable=False),
    sa.ForeignKeyConstraint(['model_version'], ['model_versions.model_version'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_version', 'feature', 'bin')
    )
    op.create_table('baseline_features',
    sa.Column('model_version', sa.Text(), nullable=False),
    sa.Column('feature', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('mean', sa.Double(), nullable=True),
    sa.Column('std', sa.Double(), nullable=True),
    sa.Column('null_share', sa.Double(), nullable=True),
    sa.ForeignKeyConstraint(['model_version'], ['model_versions.model_version'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_version', 'feature')
    )
    op.create_table('ingestion_errors',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('ingested_file_id', sa.Integer(), nullable=False),
    sa.Column('error_type', sa.Text(), nullable=False),
    sa.Column('column_name', sa.Text(), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['ingested_file_id'], ['ingested_files.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_ingestion_errors_file', 'ingestion_errors', ['ingested_file_id'], unique=False)
    op.create_table('predictions',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('file_name', sa.Text(), nullable=True),
    sa.Column('batch_key', sa.Text(), nullable=True),
    sa.Column('model_version', sa.Text(), nullable=False),
    sa.Column('predicted_label', sa.SmallInteger(), nullable=False),
    sa.Column('churn_probability', sa.Double(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=True),
    sa.Column('female', sa.Integer(), nullable=False),
    sa.Column('senior_citizen', sa.Integer(), nullable=False),
    sa.Column('partner', sa.Integer(), nullable=False),
    sa.Column('dependents', sa.Integer(), nullable=False),
    sa.Column('tenure', sa.Integer(), nullable=False),
    sa.Column('phone_service', sa.Integer(), nullable=False),
    sa.Column('multiple_lines', sa.Text(), nullable=False),
    sa.Column('internet_service', sa.Text(), nullable=False),
    sa.Column('online_security', sa.Text(), nullable=False),
    sa.Column('online_backup', sa.Text(), nullable=False),
    sa.Column('device_protection', sa.Text(), nullable=False),
    sa.Column('tech_support', sa.Text(), nullable=False),
    sa.Column('streaming_tv', sa.Text(), nullable=False),
    sa.Column('streaming_movies', sa.Text(), nullable=False),
    sa.Column('contract', sa.Text(), nullable=False),
    sa.Column('paperless_billing', sa.Integer(), nullable=False),
    sa.Column('payment_method', sa.Text(), nullable=False),
    sa.Column('monthly_charges', sa.Double(), nullable=False),
    sa.Column('total_charges', sa.Double(), nullable=True),
    sa.CheckConstraint("source IN ('webapp', 'scheduled')", name='ck_predictions_source'),
    sa.ForeignKeyConstraint(['batch_key'], ['prediction_batches.batch_key'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_predictions_created_at_id', 'predictions', ['created_at', 'id'], unique=False)
    op.create_index('ix_predictions_source_created_at', 'predictions', ['source', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_predictions_source_created_at', table_name='predictions')
    op.drop_index('ix_predictions_created_at_id', table_name='predictions')
    op.drop_table('predictions')
    op.drop_index('ix_ingestion_errors_file', table_name='ingestion_errors')
    op.drop_table('ingestion_errors')
    op.drop_table('baseline_features')
    op.drop_table('baseline_bins')
    op.drop_table('prediction_batches')
    op.drop_table('predicted_files')
    op.drop_table('model_versions')
    op.drop_index('ix_ingested_files_ingested_at', table_name='ingested_files')
    op.drop_table('ingested_files')
