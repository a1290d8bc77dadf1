"""SQLAlchemy 2.0 models. Prediction feature columns are generated from the feature contract.

Features are typed columns rather than JSONB: the dashboards aggregate each feature over time
windows (means, PSI bins) on millions of rows, which typed columns serve without parsing JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from model.contract import FEATURES, IDENTIFIER, PREDICTION_SOURCES

SOURCES = PREDICTION_SOURCES
CRITICALITIES = ("none", "low", "medium", "high")
OUTCOMES = ("good", "bad", "mixed", "unreadable")
SQL_TYPES = {"str": Text, "int": Integer, "float": Double}
REASON_SLOTS = 3  # model.reasons.TOP_REASONS; migration 0007
REASON_FEATURE_COLUMNS = tuple(f"reason_{slot}_feature" for slot in range(1, REASON_SLOTS + 1))
REASON_CONTRIBUTION_COLUMNS = tuple(f"reason_{slot}_contribution" for slot in range(1, REASON_SLOTS + 1))
# stored order of the reason codes: each slot's feature and contribution, then the rest's sum
REASON_COLUMNS = (
    *(name for pair in zip(REASON_FEATURE_COLUMNS, REASON_CONTRIBUTION_COLUMNS, strict=True)
      for name in pair),
    "rest_contribution",
)


def _feature_columns() -> dict[str, Any]:
    return {
        f.name: Column(f.name, SQL_TYPES[f.dtype](), nullable=f.nullable or not f.required)
        for f in FEATURES
    }


def _reason_columns() -> dict[str, Any]:
    """Top reasons (feature name, signed contribution to the logit), largest first; NULL on rows
    stored before reason codes existed."""
    columns: dict[str, Any] = {}
    for feature, contribution in zip(REASON_FEATURE_COLUMNS, REASON_CONTRIBUTION_COLUMNS, strict=True):
        columns[feature] = Column(feature, Text, nullable=True)
        columns[contribution] = Column(contribution, Double, nullable=True)
    # the other features' contributions summed: top three + rest + intercept = logit(probability)
    columns["rest_contribution"] = Column("rest_contribution", Double, nullable=True)
    return columns


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Prediction(Base):
    """One scored customer record: the features used, the result and where it came from.

    Partitioned by month of `created_at` (migration 0010, db/partitions.py): the primary key holds
    the partition key, so a reference to a prediction is (id, created_at); `id` alone is still
    unique (one sequence).
    """

    __tablename__ = "predictions"
    __table_args__ = (
        CheckConstraint(_in("source", SOURCES), name="ck_predictions_source"),
        # newest-first pages, with and without a source filter
        Index("ix_predictions_created_at_id", "created_at", "id"),
        Index("ix_predictions_source_created_at", "source", "created_at"),
        # replays of a batch key and the cascade from prediction_batches look rows up by key
        Index("ix_predictions_batch_key", "batch_key"),
        # a label looks up its customer's latest prediction before the outcome was known
        Index("ix_predictions_customer_created_at", IDENTIFIER, "created_at"),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False, primary_key=True
    )
    source: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str | None] = mapped_column(Text)
    batch_key: Mapped[str | None] = mapped_column(
        Text, ForeignKey("prediction_batches.batch_key", ondelete="CASCADE")
    )
    model_version: Mapped[str] = mapped_column(Text)
    predicted_label: Mapped[int] = mapped_column(SmallInteger)
    churn_probability: Mapped[float] = mapped_column(Double)
    locals()[IDENTIFIER] = Column(IDENTIFIER, Text, nullable=True)
    locals().update(_feature_columns())
    locals().update(_reason_columns())


class PredictionBatch(Base):
    """An idempotency key per request (scheduled: file + chunk): a retried request is not stored twice."""

    __tablename__ = "prediction_batches"

    batch_key: Mapped[str] = mapped_column(Text, primary_key=True)
    file_name: Mapped[str | None] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class PredictedFile(Base):
    """The prediction ledger: a good_data file recorded only after the API stored all its rows."""

    __tablename__ = "predicted_files"
    __table_args__ = (UniqueConstraint("file_name", "checksum", name="uq_predicted_files_name_checksum"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    file_name: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    predicted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class IngestedFile(Base):
    """Statistics of one ingestion of a raw file (valid or not). Never the rows themselves.

    One row per (dag_run_id, file_name); rows without a run id (NULL) are not constrained.
    """

    __tablename__ = "ingested_files"
    __table_args__ = (
        CheckConstraint(_in("criticality", CRITICALITIES), name="ck_ingested_files_criticality"),
        CheckConstraint(_in("outcome", OUTCOMES), name="ck_ingested_files_outcome"),
        Index("ix_ingested_files_ingested_at", "ingested_at"),
        # one row per ingestion of a file: save-statistics and send-alerts (in either order,
        # retried or not) upsert on it (db/statistics.py)
        UniqueConstraint("dag_run_id", "file_name", name="uq_ingested_files_run_file"),
        # one row per file content, whatever run ingests it (a claim recovered after a crash is
        # ingested again under a new run id): migration 0006
        Index(
            "uq_ingested_files_file_checksum", "file_name", "checksum", unique=True,
            postgresql_where=text("checksum IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    file_name: Mapped[str] = mapped_column(Text)
    dag_run_id: Mapped[str | None] = mapped_column(Text)
    checksum: Mapped[str | None] = mapped_column(Text)  # SHA-256 hex of the file's bytes
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ingested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    rows: Mapped[int] = mapped_column(Integer)
    valid_rows: Mapped[int] = mapped_column(Integer)
    invalid_rows: Mapped[int] = mapped_column(Integer)
    criticality: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(16))
    report_url: Mapped[str | None] = mapped_column(Text)
    alert_sent: Mapped[bool | None] = mapped_column()  # None: no alert was needed


class IngestionError(Base):
    """How many rows of one ingested file broke one rule (error type) on one column."""

    __tablename__ = "ingestion_errors"
    __table_args__ = (Index("ix_ingestion_errors_file", "ingested_file_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ingested_file_id: Mapped[int] = mapped_column(
        ForeignKey("ingested_files.id", ondelete="CASCADE")
    )
    error_type: Mapped[str] = mapped_column(Text)
    column_name: Mapped[str | None] = mapped_column(Text)  # None: the error is file-level
    count: Mapped[int] = mapped_column(Integer)


class ModelVersion(Base):
    """A trained model known to the database: its metrics and training churn rate."""

    __tablename__ = "model_versions"

    model_version: Mapped[str] = mapped_column(Text, primary_key=True)
    trained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    loaded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB)
    threshold: Mapped[float] = mapped_column(Double)
    training_churn_rate: Mapped[float] = mapped_column(Double)
    registry_version: Mapped[int | None] = mapped_column(Integer)  # MLflow's version number, if any
    # when the API last started serving it as champion; the drift reference is the latest served
    served_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BaselineFeature(Base):
    """Training statistics of one numeric feature: the reference for mean drift."""

    __tablename__ = "baseline_features"

    model_version: Mapped[str] = mapped_column(
        ForeignKey("model_versions.model_version", ondelete="CASCADE"), primary_key=True
    )
    feature: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # numeric | categorical
    mean: Mapped[float | None] = mapped_column(Double)
    std: Mapped[float | None] = mapped_column(Double)
    null_share: Mapped[float | None] = mapped_column(Double)


class BaselineBin(Base):
    """One bin of the training distribution of a feature: the reference for PSI.

    Numeric bins: `lower` <= value < `upper`, the first bin open below and the last open above
    (so bin = width_bucket(value, inner edges)). Categorical bins: `category` is the value as text.
    """

    __tablename__ = "baseline_bins"

    model_version: Mapped[str] = mapped_column(
        ForeignKey("model_versions.model_version", ondelete="CASCADE"), primary_key=True
    )
    feature: Mapped[str] = mapped_column(Text, primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    lower: Mapped[float | None] = mapped_column(Double)
    upper: Mapped[float | None] = mapped_column(Double)
    category: Mapped[str | None] = mapped_column(Text)
    proportion: Mapped[float] = mapped_column(Double)


# --- the model lifecycle (issue 15): outcomes, shadow scoring, promotion decisions -----------------

LABEL_FILE_OUTCOMES = ("good", "bad", "mixed", "unreadable", "unmatched")
# superseded: a challenger displaced before the gate judged it; conflict: an alias moved under a
# decision (compare-and-set refused), nothing was changed
DECISION_ACTIONS = ("register", "promote", "keep", "reject", "rollback", "superseded", "conflict")
RETRAIN_OUTCOMES = ("running", "registered", "failed", "conflict")


class LabelFile(Base):
    """Statistics of one label file (as `ingested_files` for customer files); never the rows."""

    __tablename__ = "label_files"
    __table_args__ = (
        UniqueConstraint("file_name", "checksum", name="uq_label_files_name_checksum"),
        CheckConstraint(_in("outcome", LABEL_FILE_OUTCOMES), name="ck_label_files_outcome"),
        Index("ix_label_files_ingested_at", "ingested_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    file_name: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    dag_run_id: Mapped[str | None] = mapped_column(Text)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    rows: Mapped[int] = mapped_column(Integer)
    stored_rows: Mapped[int] = mapped_column(Integer)  # new labels
    invalid_rows: Mapped[int] = mapped_column(Integer)  # set aside in the bad folder
    duplicate_rows: Mapped[int] = mapped_column(Integer)  # the same outcome again: not stored twice
    contradictory_rows: Mapped[int] = mapped_column(Integer)  # set aside: another outcome is known
    matched_rows: Mapped[int] = mapped_column(Integer)  # stored labels joined to a prediction
    outcome: Mapped[str] = mapped_column(String(16))
    errors: Mapped[dict[str, Any]] = mapped_column(JSONB)  # {"<error type>:<column>": rows}
    # what a reader of the statistics must know: the time zone used, no prediction matched...
    notes: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    bad_file: Mapped[str | None] = mapped_column(Text)  # where the set-aside rows are (name only)


class Label(Base):
    """One known outcome: customer `customer_id` churned (1) or not (0), known at `known_at`.

    `prediction_id` is the customer's latest prediction made before `known_at` (null when none).
    """

    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("customer_id", "known_at", name="uq_labels_customer_known_at"),
        CheckConstraint("churn IN (0, 1)", name="ck_labels_churn"),
        Index("ix_labels_prediction_id", "prediction_id"),
        Index("ix_labels_received_at", "received_at"),
        Index("ix_labels_prediction_created_at", "prediction_created_at"),
        # filled by a trigger from prediction_id when a writer gives the id alone (migration 0010)
        ForeignKeyConstraint(["prediction_id", "prediction_created_at"],
                             ["predictions.id", "predictions.created_at"],
                             name="fk_labels_prediction", match="FULL", ondelete="SET NULL"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(Text)
    churn: Mapped[int] = mapped_column(SmallInteger)
    known_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    label_file_id: Mapped[int] = mapped_column(ForeignKey("label_files.id", ondelete="CASCADE"))
    prediction_id: Mapped[int | None] = mapped_column(BigInteger)
    prediction_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ShadowPrediction(Base):
    """The challenger's score of a served request: stored apart, never returned, never counted."""

    __tablename__ = "shadow_predictions"
    __table_args__ = (
        UniqueConstraint("prediction_id", "model_version", name="uq_shadow_predictions_prediction_version"),
        Index("ix_shadow_predictions_version_created_at", "model_version", "created_at"),
        Index("ix_shadow_predictions_prediction_created_at", "prediction_created_at"),
        # filled by a trigger from prediction_id when a writer gives the id alone (migration 0010)
        ForeignKeyConstraint(["prediction_id", "prediction_created_at"],
                             ["predictions.id", "predictions.created_at"],
                             name="fk_shadow_predictions_prediction", match="FULL", ondelete="CASCADE"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    prediction_id: Mapped[int] = mapped_column(BigInteger)
    prediction_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    model_version: Mapped[str] = mapped_column(Text)
    predicted_label: Mapped[int] = mapped_column(SmallInteger)
    churn_probability: Mapped[float] = mapped_column(Double)


class PromotionDecision(Base):
    """Every lifecycle decision: a gate verdict, a person's promote or rollback, a registration."""

    __tablename__ = "promotion_decisions"
    __table_args__ = (
        CheckConstraint(_in("action", DECISION_ACTIONS), name="ck_promotion_decisions_action"),
        Index("ix_promotion_decisions_decided_at", "decided_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    action: Mapped[str] = mapped_column(String(16))
    champion_before: Mapped[int | None] = mapped_column(Integer)  # registry version numbers
    challenger: Mapped[int | None] = mapped_column(Integer)
    champion_after: Mapped[int | None] = mapped_column(Integer)
    metric: Mapped[str | None] = mapped_column(Text)
    champion_value: Mapped[float | None] = mapped_column(Double)
    challenger_value: Mapped[float | None] = mapped_column(Double)
    rows: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)
    automatic: Mapped[bool] = mapped_column()
    decided_by: Mapped[str] = mapped_column(Text)  # "retrain_model DAG" or the person's name


class RealizedPerformanceWindow(Base):
    """Realized performance of one model version over one window of prediction time.

    Filled by the label_ingestion DAG after each file (late labels revise past windows).
    Intervals are 95 %: Wilson for precision/recall, percentile bootstrap for F1/ROC AUC.
    """

    __tablename__ = "realized_performance"

    model_version: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    predictions: Mapped[int] = mapped_column(Integer)
    labelled: Mapped[int] = mapped_column(Integer)
    coverage: Mapped[float] = mapped_column(Double)  # labelled / predictions
    positives: Mapped[int] = mapped_column(Integer)
    f1: Mapped[float | None] = mapped_column(Double)
    f1_low: Mapped[float | None] = mapped_column(Double)
    f1_high: Mapped[float | None] = mapped_column(Double)
    precision: Mapped[float | None] = mapped_column(Double)
    precision_low: Mapped[float | None] = mapped_column(Double)
    precision_high: Mapped[float | None] = mapped_column(Double)
    recall: Mapped[float | None] = mapped_column(Double)
    recall_low: Mapped[float | None] = mapped_column(Double)
    recall_high: Mapped[float | None] = mapped_column(Double)
    roc_auc: Mapped[float | None] = mapped_column(Double)
    roc_auc_low: Mapped[float | None] = mapped_column(Double)
    roc_auc_high: Mapped[float | None] = mapped_column(Double)
    brier: Mapped[float | None] = mapped_column(Double)
    training_f1: Mapped[float | None] = mapped_column(Double)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # every outcome of the window is in: LABEL_HORIZON_DAYS passed since its end, or its coverage
    # reached SETTLED_MIN_COVERAGE (decisions and alerts read settled windows only)
    settled: Mapped[bool] = mapped_column(server_default=text("false"))


class RetrainAttempt(Base):
    """One retraining, recorded when it starts (committed at once) and updated when it ends.

    The retrain trigger counts labels received since the latest attempt's start, whatever its
    outcome, so a failed or rejected retraining is not followed at once by another.
    """

    __tablename__ = "retrain_attempts"
    __table_args__ = (
        CheckConstraint(_in("outcome", RETRAIN_OUTCOMES), name="ck_retrain_attempts_outcome"),
        Index("ix_retrain_attempts_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)  # why it retrained (the trigger, or "asked")
    started_by: Mapped[str] = mapped_column(Text)
    registry_version: Mapped[int | None] = mapped_column(Integer)  # the challenger registered
    detail: Mapped[str | None] = mapped_column(Text)  # the error, or the conflict


# The monitoring reference tables have their own module; imported so that Base's metadata holds
# them wherever the models are imported (Alembic's env, the tests).
import db.monitoring_models  # noqa: E402,F401
