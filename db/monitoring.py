"""Load a model version's monitoring reference (model/monitoring.py) and the thresholds in force.

Called by `load_training_baseline` after it (re)wrote the model version, in the same transaction;
the per-version rows went with the old version row (ON DELETE CASCADE), so a reload replaces them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.settings import DriftMonitoringSettings
from db.monitoring_models import (
    DriftCriticalValue,
    DriftReference,
    DriftReferenceBin,
    LogitWeight,
    ModelCalibration,
    MonitoringSegment,
    MonitoringSettings,
    SegmentReference,
)
from model.contract import FEATURES_BY_NAME, SEGMENTS
from model.monitoring import (
    EMPTY_SHARE_ALERT,
    FAMILY_FALSE_ALARM_RATE,
    MIN_ROWS,
    RARELY_EMPTY_SHARE,
    TESTED_FEATURES,
    chi2_quantile,
    degrees_of_freedom,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitoringThresholds:
    """The settings of the monitoring (defaults in model/monitoring.py, where each is explained)."""

    family_false_alarm_rate: float = FAMILY_FALSE_ALARM_RATE
    min_rows: int = MIN_ROWS
    empty_share_alert: float = EMPTY_SHARE_ALERT
    rarely_empty_share: float = RARELY_EMPTY_SHARE

    @classmethod
    def from_settings(cls, settings: DriftMonitoringSettings) -> MonitoringThresholds:
        """The thresholds configured in the environment (DRIFT_FALSE_ALARM_RATE, ...)."""
        return cls(
            family_false_alarm_rate=settings.drift_false_alarm_rate, min_rows=settings.drift_min_rows,
            empty_share_alert=settings.empty_share_alert, rarely_empty_share=settings.rarely_empty_share,
        )


def record_monitoring_settings(*, session: Session, thresholds: MonitoringThresholds) -> None:
    """Write the thresholds (one row) and the segments of the contract. Idempotent."""
    session.execute(delete(MonitoringSettings))
    session.add(MonitoringSettings(id=1, **thresholds.__dict__))
    session.execute(delete(MonitoringSegment))
    session.add_all(
        MonitoringSegment(segment=s.name, dimension=s.dimension, column_name=s.column, value=s.value,
                          lower=s.lower, upper=s.upper, position=i)
        for i, s in enumerate(SEGMENTS, start=1)
    )


def load_monitoring_reference(
    *, session: Session, metadata: Mapping[str, Any],
    thresholds: MonitoringThresholds = MonitoringThresholds(),
) -> bool:
    """Insert the version's references, weights and calibration, and the critical values they need.

    The model version row must exist. Returns False (and logs why) for a model trained before
    the monitoring reference existed: retrain it (`python -m model.train`) to monitor it.
    """
    version, reference = metadata["model_version"], metadata.get("monitoring")
    record_monitoring_settings(session=session, thresholds=thresholds)
    if reference is None:
        log.warning("model %s has no monitoring reference: retrain it to get drift tests", version)
        return False
    dofs: set[int] = set()
    for segment, part in reference["segments"].items():
        session.add(SegmentReference(
            model_version=version, segment=segment, training_rows=part["rows"],
            training_churn_rate=part["churn_rate"], mean_logit=part["mean_logit"],
        ))
        for feature, ref in part["features"].items():
            dof = degrees_of_freedom(ref["shares"])
            dofs.add(dof)
            session.add(DriftReference(
                model_version=version, segment=segment, feature=feature,
                kind="numeric" if FEATURES_BY_NAME[feature].is_numeric else "categorical",
                empty_allowed=FEATURES_BY_NAME[feature].nullable, empty_share=ref["empty_share"],
                dof=dof, mean_contribution=ref["mean_contribution"],
            ))
            session.add_all(
                DriftReferenceBin(model_version=version, segment=segment, feature=feature, bin_key=key,
                                  share=share)
                for key, share in ref["shares"].items()
            )
    _add_weights(session, version, reference["logit_weights"])
    session.add(ModelCalibration(model_version=version, **reference["calibration"]))
    _add_critical_values(session, sorted(d for d in dofs if d >= 1), thresholds.family_false_alarm_rate)
    return True


def _add_weights(session: Session, version: str, weights: Mapping[str, Any]) -> None:
    for feature, table in weights["categorical"].items():
        session.add_all(
            LogitWeight(model_version=version, feature=feature, category=category, weight=weight)
            for category, weight in table.items()
        )
    for feature, (weight, center, fill) in weights["numeric"].items():
        session.add(LogitWeight(model_version=version, feature=feature, category="", weight=weight,
                                center=center, fill=fill))


def _add_critical_values(session: Session, dofs: list[int], rate: float) -> None:
    if not dofs:
        return
    session.execute(
        insert(DriftCriticalValue)
        .values([
            {"dof": dof, "family_false_alarm_rate": rate, "tests": TESTED_FEATURES,
             "chi2_quantile": chi2_quantile(dof, rate)}
            for dof in dofs
        ])
        .on_conflict_do_nothing()
    )
