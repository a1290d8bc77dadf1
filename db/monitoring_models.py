"""Tables of the monitoring reference: what the drift, empty-value and performance SQL functions of
migration 0008 compare each window with. Filled at baseline load (`db.monitoring`), read by Grafana.

Per model version (dropped with it): the reference per segment (`segment_reference`), each
feature's reference bins with the empty bin (`drift_reference`, `drift_reference_bins`), the logit
weights that make drift rankable by its effect on the output (`logit_weights`) and the CBPE
calibration (`model_calibration`). Shared by all versions: the segments declared in the contract
(`monitoring_segments`), the thresholds in force (`monitoring_settings`, one row) and the
chi-square critical values per (degrees of freedom, false-alarm rate, tests)
(`drift_critical_values`): PostgreSQL has no chi-square inverse, so scipy fills the table.
"""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Double, ForeignKey, Integer, SmallInteger, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base

VERSION_FK = "model_versions.model_version"


class MonitoringSettings(Base):
    """The thresholds in force (one row): what the SQL functions compare with."""

    __tablename__ = "monitoring_settings"
    __table_args__ = (CheckConstraint("id = 1", name="ck_monitoring_settings_one_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    family_false_alarm_rate: Mapped[float] = mapped_column(Double)  # per window, over all features
    min_rows: Mapped[int] = mapped_column(Integer)  # smaller windows get no verdict
    empty_share_alert: Mapped[float] = mapped_column(Double)  # "mostly empty" above this share
    rarely_empty_share: Mapped[float] = mapped_column(Double)  # "rarely empty" in training below it


class MonitoringSegment(Base):
    """A segment of the contract: the rows whose `column_name` equals `value` or lies in [lower, upper)."""

    __tablename__ = "monitoring_segments"

    segment: Mapped[str] = mapped_column(Text, primary_key=True)
    dimension: Mapped[str] = mapped_column(Text)
    column_name: Mapped[str] = mapped_column(Text)
    value: Mapped[str | None] = mapped_column(Text)
    lower: Mapped[float | None] = mapped_column(Double)
    upper: Mapped[float | None] = mapped_column(Double)
    position: Mapped[int] = mapped_column(Integer)


class SegmentReference(Base):
    """A segment of the training data (`all`: every row): size, churn rate, mean logit."""

    __tablename__ = "segment_reference"

    model_version: Mapped[str] = mapped_column(
        Text, ForeignKey(VERSION_FK, ondelete="CASCADE"), primary_key=True)
    segment: Mapped[str] = mapped_column(Text, primary_key=True)
    training_rows: Mapped[int] = mapped_column(Integer)
    training_churn_rate: Mapped[float] = mapped_column(Double)
    mean_logit: Mapped[float] = mapped_column(Double)


class DriftReference(Base):
    """One feature in one training segment: empty share, degrees of freedom, mean logit contribution."""

    __tablename__ = "drift_reference"

    model_version: Mapped[str] = mapped_column(
        Text, ForeignKey(VERSION_FK, ondelete="CASCADE"), primary_key=True)
    segment: Mapped[str] = mapped_column(Text, primary_key=True)
    feature: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    empty_allowed: Mapped[bool] = mapped_column(Boolean)  # the contract lets it be empty
    empty_share: Mapped[float] = mapped_column(Double)
    dof: Mapped[int] = mapped_column(Integer)  # bins the reference fills, minus one
    mean_contribution: Mapped[float] = mapped_column(Double)


class DriftReferenceBin(Base):
    """Share of one bin (quantile bin number, category, or '(empty)') of a feature in a segment."""

    __tablename__ = "drift_reference_bins"

    model_version: Mapped[str] = mapped_column(
        Text, ForeignKey(VERSION_FK, ondelete="CASCADE"), primary_key=True)
    segment: Mapped[str] = mapped_column(Text, primary_key=True)
    feature: Mapped[str] = mapped_column(Text, primary_key=True)
    bin_key: Mapped[str] = mapped_column(Text, primary_key=True)
    share: Mapped[float] = mapped_column(Double)


class DriftCriticalValue(Base):
    """chi2.isf(1 - (1 - rate)^(1/tests), dof): the Sidak-corrected chi-square critical value."""

    __tablename__ = "drift_critical_values"

    dof: Mapped[int] = mapped_column(Integer, primary_key=True)
    family_false_alarm_rate: Mapped[float] = mapped_column(Double, primary_key=True)
    tests: Mapped[int] = mapped_column(Integer, primary_key=True)
    chi2_quantile: Mapped[float] = mapped_column(Double)


class LogitWeight(Base):
    """A feature's weight in the logit: per category (one-hot), or weight/center/fill of a number."""

    __tablename__ = "logit_weights"

    model_version: Mapped[str] = mapped_column(
        Text, ForeignKey(VERSION_FK, ondelete="CASCADE"), primary_key=True)
    feature: Mapped[str] = mapped_column(Text, primary_key=True)
    category: Mapped[str] = mapped_column(Text, primary_key=True)  # '' for a number
    weight: Mapped[float] = mapped_column(Double)
    center: Mapped[float | None] = mapped_column(Double)
    fill: Mapped[float | None] = mapped_column(Double)


class ModelCalibration(Base):
    """Platt scaling of a model version's probabilities, for performance estimated without labels."""

    __tablename__ = "model_calibration"

    model_version: Mapped[str] = mapped_column(
        Text, ForeignKey(VERSION_FK, ondelete="CASCADE"), primary_key=True)
    method: Mapped[str] = mapped_column(Text)
    slope: Mapped[float] = mapped_column(Double)
    intercept: Mapped[float] = mapped_column(Double)
    fitted_on: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
