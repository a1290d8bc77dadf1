"""The model lifecycle: retrain a challenger, gate it, promote or roll back the champion.

    python -m jobs.lifecycle status
    python -m jobs.lifecycle promote --version N --by "<your name>" [--reason "..."]
                                     [--override-reason "..."]
    python -m jobs.lifecycle rollback --version N --by "<your name>" [--reason "..."]
    python -m jobs.lifecycle sync       (every registered version gets its database row)
    python -m jobs.lifecycle gate       (what the retrain_model DAG runs)
    python -m jobs.lifecycle retrain    (train a challenger now, whatever the condition)

Every decision is a `promotion_decisions` row (when, versions, metric values, automatic or by
whom, why) and tags on the MLflow version. The API follows the `champion` alias by itself.

The rules that keep decisions sound:
- **Settled outcomes only**: the gate, the retrain rule and retraining's rows read labelled
  predictions whose outcome is settled (jobs/realized.py's `is_settled`: LABEL_HORIZON_DAYS since
  the prediction, or its window's coverage at SETTLED_MIN_COVERAGE).
- **One retraining at a time**: a PostgreSQL advisory lock (db/locks.py) held for the whole
  retraining; a second one finds it held and is skipped. Each attempt is a `retrain_attempts` row
  committed when it starts; the trigger counts labels received since the latest attempt, and
  after a rejected challenger no automatic retraining starts for RETRAIN_BACKOFF_MINUTES.
- **Compare-and-set aliases**: every alias move reads the aliases under a second advisory lock,
  checks they are what the decision was based on, then moves them; on a mismatch nothing moves
  and a `conflict` decision is recorded. A challenger displaced by a newer one before the gate
  judged it gets a `superseded` decision.
- **A manual promote is judged too**: the gate's verdict on the version is shown and recorded; a
  promote against it needs `--override-reason`.

Each step is one database transaction: a retraining's model-version row, its registry number and
its "register" decision commit together or not at all; so do a gate's reads and its decision.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from core.settings import LifecycleSettings, RegistrySettings
from db.decisions import latest_decision, list_decisions, record_decision
from db.labels import count_labels_received_since, count_predictions_per_window, labelled_predictions
from db.locks import REGISTRY_ALIASES, RETRAINING, advisory_lock
from db.model_versions import record_model_version, registry_numbers, set_registry_version
from db.realized_performance import latest_realized_f1
from db.retraining import finish_retrain_attempt, latest_retrain_start, start_retrain_attempt
from db.session import session_scope
from db.shadow_predictions import gate_rows
from jobs.realized import settled_predictions
from model.contract import TARGET
from model.files import METADATA_FILE
from model.gate import EvaluationSet, GateDecision, GatePolicy, evaluate_gate
from model.registry import (
    CHALLENGER,
    CHAMPION,
    RegisteredVersion,
    admit_registered,
    delete_alias,
    gate_figures,
    get_version,
    is_unreachable,
    list_versions,
    log_gate_metrics,
    log_training_run,
    read_run_metadata,
    set_alias,
    tag_version,
    version_by_alias,
)

if TYPE_CHECKING:
    from model.admission import AdmissionError

AUTOMATIC = "retrain_model DAG"
log = logging.getLogger(__name__)


def gate_policy(settings: LifecycleSettings) -> GatePolicy:
    """The promotion gate's policy from the GATE_* settings (the stated false-promotion rate and the
    bootstrap draws included)."""
    return GatePolicy.from_settings(settings)


class LifecycleError(RuntimeError):
    """A lifecycle command that cannot be done as asked (no such version, no champion...)."""


class AliasConflictError(LifecycleError):
    """An alias moved between a decision's reads and its move: nothing moved, a `conflict`
    decision was recorded."""


class GateVerdictError(LifecycleError):
    """A manual promote against the gate's verdict without an override reason: nothing moved."""

    def __init__(self, verdict: GateDecision) -> None:
        self.verdict = verdict
        super().__init__("the promotion gate does not promote this version: " + "; ".join(verdict.reasons)
                         + ". To promote it anyway, give --override-reason (recorded with the decision).")


class RetrainingRunningError(LifecycleError):
    """Another retraining holds the retraining lock."""


def _number(version: RegisteredVersion | None) -> int | None:
    return None if version is None else version.number


def _record(session: Session, action: str, *, by: str, automatic: bool, reason: str,
            champion_before: int | None, challenger: int | None, champion_after: int | None,
            decision: GateDecision | None = None, registry: RegistrySettings | None = None,
            details: dict[str, Any] | None = None) -> int:
    """A promotion_decisions row (in the caller's transaction), and the same facts as tags on the
    versions concerned."""
    recorded = json.loads(json.dumps(decision.as_dict(), default=str)) if decision else {}
    decision_id = record_decision(
        session=session, action=action, champion_before=champion_before, challenger=challenger,
        champion_after=champion_after, metric=decision.metric if decision else None,
        champion_value=decision.champion if decision else None,
        challenger_value=decision.challenger if decision else None,
        rows=decision.rows if decision else None, reason=reason,
        details=recorded | (details or {}), automatic=automatic, decided_by=by,
    )
    when = datetime.now(UTC).isoformat(timespec="seconds")
    for number in {challenger, champion_after} - {None}:
        assert number is not None
        tag_version(number, {f"decision.{decision_id}": f"{action} by {by} at {when}: {reason}"[:5000],
                             "last_decision": action}, registry)
    return decision_id


def admissible(number: int, registry: RegistrySettings | None = None) -> RegisteredVersion:
    """The version, once it passed admission (model/admission.py); LifecycleError saying why not:
    no alias ever moves to a version the API would refuse to serve."""
    from model.admission import AdmissionError  # ONNX Runtime and scikit-learn: only when needed

    try:
        return admit_registered(number, registry)
    except AdmissionError as refused:
        raise LifecycleError(f"version {number} cannot be served ({refused.reason}: {refused.detail}); "
                             "the champion alias was not moved") from refused


# --- alias moves: compare-and-set ------------------------------------------------------------------

@dataclass(frozen=True)
class AliasBasis:
    """The aliases a decision was based on (registry version numbers, None: alias unset)."""

    champion: int | None
    challenger: int | None


def _check_basis(basis: AliasBasis, *, action: str, by: str, automatic: bool, target: int | None,
                 registry: RegistrySettings | None) -> None:
    """Read both aliases (the caller holds REGISTRY_ALIASES); when they are not the basis, record a
    `conflict` decision and raise AliasConflictError."""
    champion, challenger = version_by_alias(CHAMPION, registry), version_by_alias(CHALLENGER, registry)
    now = AliasBasis(_number(champion), _number(challenger))
    if now == basis:
        return
    reason = (f"{action} of version {target} refused: the aliases moved since the decision was made "
              f"(champion {basis.champion} -> {now.champion}, challenger {basis.challenger} -> "
              f"{now.challenger}); nothing changed")
    with session_scope() as session:
        _record(session, "conflict", by=by, automatic=automatic, reason=reason,
                champion_before=now.champion, challenger=target, champion_after=now.champion,
                registry=registry, details={"attempted": action, "basis": dataclasses.asdict(basis)})
    raise AliasConflictError(reason)


def _move_champion(number: int, basis: AliasBasis, *, action: str, by: str, automatic: bool, reason: str,
                   decision: GateDecision | None, registry: RegistrySettings | None,
                   details: dict[str, Any] | None = None, admitted: RegisteredVersion | None = None) -> int:
    """Point `champion` at `number` if the aliases are still `basis` (compare-and-set); drop
    `challenger` if it pointed there; record the decision. Returns the decision id. `admitted`:
    the version, when the caller has just passed it through admission."""
    # admission first: no alias moves to a version the API refuses
    target = admitted if admitted is not None and admitted.number == number else admissible(number, registry)
    with advisory_lock(REGISTRY_ALIASES, wait=True):
        _check_basis(basis, action=action, by=by, automatic=automatic, target=number, registry=registry)
        # every champion move passes here: the one place for checks on the target before it is served
        set_alias(CHAMPION, target.number, registry)
        if basis.challenger == number:
            delete_alias(CHALLENGER, registry)
        with session_scope() as session:
            return _record(session, action, by=by, automatic=automatic, reason=reason,
                           champion_before=basis.champion, challenger=number if action == "promote" else None,
                           champion_after=number, decision=decision, registry=registry, details=details)


# --- the gate --------------------------------------------------------------------------------------

def _settled_gate_rows(champion: RegisteredVersion, candidate: RegisteredVersion,
                       settings: LifecycleSettings, now: datetime | None) -> tuple[list[dict[str, Any]], int]:
    """The settled labelled customers both versions scored since `candidate` was registered, and
    how many labelled ones were left out as not settled yet."""
    import pandas as pd

    since = datetime.fromisoformat(candidate.tags.get("registered_at", "1970-01-01T00:00:00+00:00"))
    with session_scope() as session:
        rows = gate_rows(session=session, champion=champion.model_version,
                         challenger=candidate.model_version, since=since)
        windows = count_predictions_per_window(session=session,
                                               window_minutes=settings.realized_window_minutes)
    if not rows:
        return [], 0
    frame = pd.DataFrame(rows)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    kept = settled_predictions(frame, windows, settings, now)
    settled = [row for row, keep in zip(rows, frame.index.isin(kept.index), strict=True) if keep]
    return settled, len(rows) - len(kept)


def gate_verdict(candidate: RegisteredVersion, champion: RegisteredVersion,
                 settings: LifecycleSettings | None = None, now: datetime | None = None) -> GateDecision:
    """The promotion gate's verdict on `candidate` against `champion` (model/gate.py), on the
    settled labelled customers both scored since the candidate was registered."""
    settings = settings or LifecycleSettings()
    rows, unsettled = _settled_gate_rows(champion, candidate, settings, now)
    decision = evaluate_gate(EvaluationSet.from_rows(rows), gate_policy(settings))
    if unsettled and not decision.enough_rows:
        decision = dataclasses.replace(decision, reasons=[
            *decision.reasons, f"{unsettled} more labelled customers are not settled yet (their "
            f"window's coverage under SETTLED_MIN_COVERAGE={settings.settled_min_coverage} and their "
            f"prediction younger than LABEL_HORIZON_DAYS={settings.label_horizon_days:g})"])
    return decision


def _admission_refusal(number: int, registry: RegistrySettings | None) -> AdmissionError | None:
    """None when version `number` passes admission (model/admission.py), else the AdmissionError
    saying why. A registry or artifact store that does not answer raises (an outage is no verdict
    on the version: the task's retry)."""
    from model.admission import AdmissionError  # ONNX Runtime: only when needed

    try:
        admit_registered(number, registry)
    except AdmissionError as refused:
        if refused.reason == "unloadable" and is_unreachable(refused):
            raise
        return refused
    return None


def _reject_refused(challenger: RegisteredVersion, champion: RegisteredVersion, basis: AliasBasis,
                    refused: AdmissionError, *, by: str, settings: LifecycleSettings,
                    registry: RegistrySettings | None) -> GateDecision:
    """Reject a challenger admission refuses: the challenger alias removed (compare-and-set), a
    `reject` decision saying it was refused at admission and why (details `admission`), the gate's
    figures on its run, and the Teams card every admission refusal sends. The champion is untouched."""
    reason = (f"refused at admission ({refused.reason}): {refused.detail}; the challenger alias was "
              f"removed and the champion (version {champion.number}) keeps serving")
    decision = GateDecision(promote=False, metric=gate_policy(settings).metric, rows=0, champion=None,
                            challenger=None, reasons=[reason])
    with advisory_lock(REGISTRY_ALIASES, wait=True):
        _check_basis(basis, action="reject", by=by, automatic=True, target=challenger.number,
                     registry=registry)
        delete_alias(CHALLENGER, registry)
        with session_scope() as session:
            _record(session, "reject", by=by, automatic=True, reason=reason, champion_before=champion.number,
                    challenger=challenger.number, champion_after=champion.number, decision=decision,
                    registry=registry, details={"admission": {"reason": refused.reason,
                                                              "detail": refused.detail}})
    log.error("challenger version %s (%s) rejected: %s", challenger.number, challenger.model_version, reason)
    log_gate_metrics(challenger.run_id, gate_figures(decision), registry)
    _alert_refused_challenger(challenger, refused)
    return decision


def _alert_refused_challenger(challenger: RegisteredVersion, refused: AdmissionError) -> None:
    """The Teams card of an admission refusal (as the API sends); an undelivered card is logged,
    never a reason to fail the gate (its decision is recorded and the alias gone)."""
    from core.settings import AlertSettings
    from jobs.alerts import build_model_refusal_card, send_alert

    alerts = AlertSettings()
    card = build_model_refusal_card(
        title=f"Model version refused: the promotion gate rejected challenger version {challenger.number}",
        alias=CHALLENGER, number=challenger.number, model_version=challenger.model_version or "unknown",
        reason=refused.reason, detail=refused.detail, at=datetime.now(UTC), run_id=challenger.run_id,
        what_now="The challenger alias was removed; the champion keeps serving. Fix the version (or "
                 "retrain) and register it again: python -m jobs.lifecycle status shows the decision.")
    try:
        send_alert(card, webhook_url=alerts.teams_webhook_url.get_secret_value()
                   if alerts.teams_webhook_url else None, attempts=alerts.teams_attempts,
                   backoff_seconds=alerts.teams_backoff_seconds, timeout_seconds=alerts.teams_timeout_seconds)
    except Exception:  # the decision stands; the card's loss is in the log
        log.exception("the Teams alert of the refused challenger version %s was not delivered",
                      challenger.number)


def run_gate(settings: LifecycleSettings | None = None, registry: RegistrySettings | None = None,
             by: str = AUTOMATIC, now: datetime | None = None) -> GateDecision | None:
    """Judge the challenger on the settled labelled customers both models scored since it was
    registered.

    A challenger admission refuses (model/admission.py: its artifacts gone, a graph the contract does
    not fit...) is rejected before any verdict: alias removed, a `reject` decision saying why, the
    Teams card of admission refusals. Otherwise it promotes it, or rejects it (alias removed,
    decision recorded with the reasons), or, with too few settled labelled customers yet, leaves it
    in shadow. None when there is no challenger.
    AliasConflictError (recorded) when an alias moved while it judged.
    """
    settings = settings or LifecycleSettings()
    challenger, champion = version_by_alias(CHALLENGER, registry), version_by_alias(CHAMPION, registry)
    if challenger is None or champion is None:
        return None
    basis = AliasBasis(champion.number, challenger.number)
    refusal = _admission_refusal(challenger.number, registry)  # before any verdict: shadow rows or not
    if refusal is not None:
        return _reject_refused(challenger, champion, basis, refusal, by=by, settings=settings,
                               registry=registry)
    decision = gate_verdict(challenger, champion, settings, now)
    log_gate_metrics(challenger.run_id, gate_figures(decision), registry)  # on the challenger's run
    if decision.promote:
        _move_champion(challenger.number, basis, action="promote", by=by, automatic=True,
                       decision=decision, registry=registry, admitted=challenger,
                       reason=f"gate: {decision.metric} {decision.challenger:.4f} vs {decision.champion:.4f} "
                              f"on {decision.rows} settled labelled customers, no segment regression")
    elif decision.enough_rows:
        with advisory_lock(REGISTRY_ALIASES, wait=True):
            _check_basis(basis, action="reject", by=by, automatic=True, target=challenger.number,
                         registry=registry)
            delete_alias(CHALLENGER, registry)
            with session_scope() as session:
                _record(session, "reject", by=by, automatic=True, reason="; ".join(decision.reasons),
                        champion_before=champion.number, challenger=challenger.number,
                        champion_after=champion.number, decision=decision, registry=registry)
    return decision


# --- promote and roll back by hand ----------------------------------------------------------------

def promote(number: int, *, by: str, reason: str = "promoted by hand", override_reason: str | None = None,
            settings: LifecycleSettings | None = None, registry: RegistrySettings | None = None) -> int:
    """Point `champion` at version `number` by hand (and drop `challenger` if it pointed there).

    The gate's verdict on the version (against the current champion, on the settled labelled
    customers both scored) is recorded with the decision; when it does not promote, the promote
    needs `override_reason` (GateVerdictError otherwise, nothing moved). AliasConflictError when
    an alias moved meanwhile. Returns the decision id.
    """
    champion, challenger = version_by_alias(CHAMPION, registry), version_by_alias(CHALLENGER, registry)
    if champion is not None and champion.number == number:
        raise LifecycleError(f"version {number} is already the champion")
    target = admissible(number, registry)  # a version the API cannot serve is refused before any verdict
    verdict = None if champion is None else gate_verdict(target, champion, settings)
    if verdict is not None and not verdict.promote and not override_reason:
        raise GateVerdictError(verdict)
    details: dict[str, Any] = {"gate_verdict": "promote" if verdict is None or verdict.promote else "against"}
    if verdict is not None and not verdict.promote:
        reason = f"{reason}; against the gate ({'; '.join(verdict.reasons)}); override: {override_reason}"
        details["override_reason"] = override_reason
    return _move_champion(number, AliasBasis(_number(champion), _number(challenger)), action="promote",
                          by=by, automatic=False, reason=reason, decision=verdict, registry=registry,
                          details=details)


def rollback(number: int, *, by: str, reason: str = "rolled back by hand",
             registry: RegistrySettings | None = None) -> int:
    """Point `champion` back at an earlier version `number` (compare-and-set, as promote)."""
    before, challenger = version_by_alias(CHAMPION, registry), version_by_alias(CHALLENGER, registry)
    if before is not None and number >= before.number:
        raise LifecycleError(f"version {number} is not earlier than the champion "
                             f"(version {before.number}); use promote")
    return _move_champion(number, AliasBasis(_number(before), _number(challenger)), action="rollback",
                          by=by, automatic=False, reason=reason, decision=None, registry=registry)


# --- retraining -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetrainCheck:
    retrain: bool
    reason: str


def should_retrain(settings: LifecycleSettings | None = None, registry: RegistrySettings | None = None,
                   now: datetime | None = None) -> RetrainCheck:
    """Retrain when no challenger waits, no rejection happened within RETRAIN_BACKOFF_MINUTES, and
    either RETRAIN_MIN_NEW_LABELS labels arrived since the last retrain attempt (or, before any,
    since the champion was trained) or the champion's latest settled realized F1 window, newer
    than the last attempt, lies significantly below its training F1 (its 95 % interval excludes it)."""
    settings = settings or LifecycleSettings()
    now = now or datetime.now(UTC)
    if version_by_alias(CHALLENGER, registry) is not None:
        return RetrainCheck(False, "a challenger is already waiting for the gate")
    champion = version_by_alias(CHAMPION, registry)
    if champion is None:
        return RetrainCheck(False, "no champion registered")
    with session_scope() as session:
        last_attempt = latest_retrain_start(session=session)
        since = last_attempt or datetime.fromisoformat(champion.tags["trained_at"])
        new = count_labels_received_since(session=session, since=since)
        rejected = latest_decision(session=session, action="reject")
        realized = latest_realized_f1(session=session, model_version=champion.model_version)
    backoff = timedelta(minutes=settings.retrain_backoff_minutes)
    if rejected is not None and rejected["decided_at"] + backoff > now:
        return RetrainCheck(False, f"backing off: version {rejected['challenger']} was rejected at "
                                   f"{rejected['decided_at']:%Y-%m-%d %H:%M} UTC; no retraining before "
                                   f"{rejected['decided_at'] + backoff:%Y-%m-%d %H:%M} UTC "
                                   f"(RETRAIN_BACKOFF_MINUTES={settings.retrain_backoff_minutes:g})")
    what = "the last retrain attempt" if last_attempt else "the champion was trained"
    if new >= settings.retrain_min_new_labels:
        return RetrainCheck(True, f"{new} new labels since {what} "
                                  f"(RETRAIN_MIN_NEW_LABELS={settings.retrain_min_new_labels})")
    fresh = realized is not None and (last_attempt is None or realized.window_end > last_attempt)
    if fresh and realized is not None and realized.training_f1 is not None and realized.high is not None \
            and realized.high < realized.training_f1:
        return RetrainCheck(True, f"settled realized F1 {realized.f1:.3f} (95 % interval "
                                  f"{realized.low:.3f}-{realized.high:.3f}) below the training F1 "
                                  f"{realized.training_f1:.3f}")
    return RetrainCheck(False, f"{new} new labels since {what}, {settings.retrain_min_new_labels} needed; "
                               "settled realized F1 not significantly below training")


def retrain(by: str = AUTOMATIC, reason: str = "asked", registry: RegistrySettings | None = None,
            settings: LifecycleSettings | None = None) -> RegisteredVersion:
    """Train a challenger now (see `_retrain_locked`); RetrainingRunningError when another
    retraining holds the lock."""
    with advisory_lock(RETRAINING, wait=False) as acquired:
        if not acquired:
            raise RetrainingRunningError("another retraining is running; try again when it ends")
        return _retrain_locked(by, reason, registry, settings or LifecycleSettings())


def retrain_if_needed(by: str = AUTOMATIC, settings: LifecycleSettings | None = None,
                      registry: RegistrySettings | None = None) -> RetrainCheck | RegisteredVersion:
    """The retrain_model DAG's `retrain-if-needed` task: the registered challenger, or the check
    that said no (the task is then skipped with its reason). The check runs under the retraining
    lock, so two runs never both decide to retrain."""
    settings = settings or LifecycleSettings()
    with advisory_lock(RETRAINING, wait=False) as acquired:
        if not acquired:
            return RetrainCheck(False, "another retraining is running")
        check = should_retrain(settings, registry)
        if not check.retrain:
            return check
        return _retrain_locked(by, check.reason, registry, settings)


def _retrain_locked(by: str, reason: str, registry: RegistrySettings | None,
                    settings: LifecycleSettings) -> RegisteredVersion:
    """Train on the original training split plus every settled labelled serving row (holdout
    customers left out by model/train.py); register the result as `challenger` by compare-and-set,
    load its drift baseline and record the registration. The caller holds the retraining lock."""
    with session_scope() as session:  # committed now: a crash below still counts as an attempt
        attempt = start_retrain_attempt(session=session, reason=reason, started_by=by)
    try:
        return _train_and_register(attempt, by, reason, registry, settings)
    except AliasConflictError as error:
        with session_scope() as session:
            finish_retrain_attempt(session=session, attempt_id=attempt, outcome="conflict", detail=str(error))
        raise
    except BaseException as error:
        with session_scope() as session:
            finish_retrain_attempt(session=session, attempt_id=attempt, outcome="failed", detail=repr(error))
        raise


def _train_and_register(attempt: int, by: str, reason: str, registry: RegistrySettings | None,
                        settings: LifecycleSettings) -> RegisteredVersion:
    from model.train import train  # scikit-learn and friends: only when a retraining runs

    basis_challenger = _number(version_by_alias(CHALLENGER, registry))
    with session_scope() as session:
        judged = labelled_predictions(session=session)
        windows = count_predictions_per_window(session=session,
                                               window_minutes=settings.realized_window_minutes)
    settled = settled_predictions(judged, windows, settings)
    extra = settled.assign(**{TARGET: settled["outcome"].map({1: "Yes", 0: "No"})})
    with tempfile.TemporaryDirectory(prefix="churn-retrain-") as folder:
        metadata = train(out_dir=Path(folder), extra_rows=extra)
        registered = log_training_run(Path(folder), alias=None, settings=registry,
                                      extra_params={"serving_rows_added": metadata["serving_rows_added"]})
        assert registered is not None, "MLFLOW_TRACKING_URI is unset: nowhere to register a challenger"
        saved = json.loads((Path(folder) / METADATA_FILE).read_text())
    with advisory_lock(REGISTRY_ALIASES, wait=True):
        champion_now = _number(version_by_alias(CHAMPION, registry))  # not the one at the start
        _check_basis(AliasBasis(champion_now, basis_challenger), action="register", by=by,
                     automatic=by == AUTOMATIC, target=registered.number, registry=registry)
        set_alias(CHALLENGER, registered.number, registry)
        with session_scope() as session:  # the version's records and its decisions: all or nothing
            record_model_version(session=session, metadata=saved)
            set_registry_version(session=session, model_version=registered.model_version,
                                 registry_version=registered.number)
            if basis_challenger is not None:
                _record(session, "superseded", by=by, automatic=by == AUTOMATIC, registry=registry,
                        reason=f"displaced by version {registered.number} before the gate judged it",
                        champion_before=champion_now, challenger=basis_challenger,
                        champion_after=champion_now)
            _record(session, "register", by=by, automatic=by == AUTOMATIC, registry=registry,
                    reason=f"retrained ({reason}) on {metadata['training_rows']} rows, "
                           f"{metadata['serving_rows_added']} of them settled labelled serving rows "
                           f"({metadata['serving_rows_excluded']} holdout customers left out)",
                    champion_before=champion_now, challenger=registered.number, champion_after=champion_now)
            finish_retrain_attempt(session=session, attempt_id=attempt, outcome="registered",
                                   registry_version=registered.number)
    return get_version(registered.number, registry)


# --- every registered version in the database -----------------------------------------------------

@dataclass(frozen=True)
class VersionSync:
    """What `sync_registered_versions` did, by registry version number."""

    recorded: list[int]  # rows written: training metrics, threshold, calibration, drift baseline
    numbered: list[int]  # the row existed; its registry number is now recorded
    tagged: list[int]  # tags our registration sets (model_version, trained_at...) were missing: filled
    unreadable: dict[int, str]  # no row could be written, and why (tried again at the next run)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (an XCom): the numbers of `unreadable` as strings."""
        return dataclasses.asdict(self) | {"unreadable": {str(k): v for k, v in self.unreadable.items()}}


def _missing_tags(version: RegisteredVersion, metadata: dict[str, Any]) -> dict[str, str]:
    """The tags `log_training_run` sets that a version registered otherwise lacks."""
    registered = (datetime.fromtimestamp(version.created_ms / 1000, UTC) if version.created_ms
                  else datetime.now(UTC))
    wanted = {"model_version": str(metadata["model_version"]), "trained_at": str(metadata["trained_at"]),
              "holdout_f1": str(metadata.get("metrics", {}).get("f1", "")), "run_id": version.run_id,
              "registered_at": registered.isoformat()}
    return {key: value for key, value in wanted.items() if value and not version.tags.get(key)}


def _sync_version(session: Session, version: RegisteredVersion, known: dict[str, int | None],
                  registry: RegistrySettings | None, done: VersionSync) -> None:
    """Write the row of one registered version (see sync_registered_versions); raises to say why not."""
    if version.model_version in known:  # the row is there, its number is not
        set_registry_version(session=session, model_version=version.model_version,
                             registry_version=version.number)
        known[version.model_version] = version.number
        done.numbered.append(version.number)
        return
    if not version.run_id:
        raise LifecycleError("it was registered from no training run: no metadata.json to read")
    metadata = read_run_metadata(version.run_id, registry)
    named = metadata.get("model_version")
    if not isinstance(named, str) or not named:
        raise LifecycleError("its metadata.json names no model_version")
    if version.model_version and named != version.model_version:
        raise LifecycleError(f"its metadata.json says {named!r}, its model_version tag "
                             f"{version.model_version!r}")
    with session.begin_nested():  # a version whose metadata does not fit leaves the others' rows
        if named not in known:
            record_model_version(session=session, metadata=metadata)
            done.recorded.append(version.number)
        else:
            done.numbered.append(version.number)
        set_registry_version(session=session, model_version=named, registry_version=version.number)
    known[named] = version.number
    tags = _missing_tags(version, metadata)
    if tags:
        tag_version(version.number, tags, registry)
        done.tagged.append(version.number)


def sync_registered_versions(registry: RegistrySettings | None = None) -> VersionSync:
    """Give every registered version its `model_versions` row, however it was registered
    (`python -m model.train`, the retrain DAG, by hand in MLflow), with or without an alias.

    A version whose model version has no row gets one from the metadata.json of its training run
    (training metrics, threshold, calibration, drift baseline: `record_model_version`); a row
    without its registry number gets it. A version registered by hand (no `model_version`,
    `trained_at` or `registered_at` tag) gets the tags our registration sets, so the API admits it
    by name and the gate and the retrain rule can read it. A version whose metadata cannot be read
    or does not fit is listed in `unreadable` with the reason and tried again at the next run; the
    registry or the database unreachable raises (the task's retry).
    """
    done = VersionSync([], [], [], {})
    versions = list_versions(registry)
    with session_scope() as session:
        known = registry_numbers(session=session)
        for version in versions:
            if version.model_version and known.get(version.model_version) is not None:
                continue
            try:
                _sync_version(session, version, known, registry, done)
            except Exception as error:
                if is_unreachable(error) or isinstance(error, DBAPIError):
                    raise  # an outage, not this version's fault: the task's retry
                done.unreadable[version.number] = f"{type(error).__name__}: {str(error)[:300]}"
                log.warning("registered version %s has no database row: %s", version.number,
                            done.unreadable[version.number])
    return done


# --- the DAG's steps and the command line ----------------------------------------------------------

def promotion_gate_step(by: str = AUTOMATIC) -> dict[str, Any] | None:
    """The retrain_model DAG's `promotion-gate` task: run the gate; what it decided, or None when
    no challenger waits."""
    try:
        decision = run_gate(by=by)
    except AliasConflictError as error:  # recorded; the next run judges the aliases as they are
        log.warning("%s", error)
        return {"promote": False, "reasons": [str(error)], "rows": None, "conflict": True}
    return None if decision is None else {"promote": decision.promote, "reasons": decision.reasons,
                                          "rows": decision.rows}


def recent_decisions(limit: int = 20) -> list[dict[str, Any]]:
    """The latest `promotion_decisions` rows, newest first (columns as dict keys)."""
    with session_scope() as session:
        return list_decisions(session=session, limit=limit)


def status(registry: RegistrySettings | None = None) -> dict[str, Any]:
    """Champion and challenger (number and model version) and the last 10 decisions."""
    return {
        alias: (None if (v := version_by_alias(alias, registry)) is None
                else {"version": v.number, "model_version": v.model_version})
        for alias in (CHAMPION, CHALLENGER)
    } | {"decisions": recent_decisions(10)}


def _print_verdict(verdict: GateDecision) -> None:
    said = "promote" if verdict.promote else "do not promote"
    figures = (f": {verdict.metric} {verdict.challenger:.4f} vs champion {verdict.champion:.4f} on "
               f"{verdict.rows} settled labelled customers" if verdict.challenger is not None
               and verdict.champion is not None else "")
    print(f"gate verdict: {said}{figures}")
    for reason in verdict.reasons:
        print(f"  - {reason}")


def _promote_command(args: argparse.Namespace) -> None:
    try:
        decision = promote(args.version, by=args.by, reason=args.reason, override_reason=args.override_reason)
    except GateVerdictError as error:
        _print_verdict(error.verdict)
        raise SystemExit(f"not promoted: the gate says no; to promote version {args.version} anyway, "
                         "add --override-reason \"<why>\" (recorded with the decision)") from error
    recorded = recent_decisions(1)[0]
    print(f"gate verdict: {recorded['details'].get('gate_verdict', 'n/a')}"
          + (f" (overridden: {args.override_reason})" if recorded["details"].get("override_reason") else ""))
    print(f"decision {decision}: version {args.version} is champion")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Promote, roll back, gate or retrain the churn model.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("promote", "rollback"):
        command = sub.add_parser(name)
        command.add_argument("--version", type=int, required=True, help="MLflow version number")
        command.add_argument("--by", required=True, help="who decides (recorded)")
        done = "promoted" if name == "promote" else "rolled back"
        command.add_argument("--reason", default=f"{done} by hand")
        if name == "promote":
            command.add_argument("--override-reason",
                                 help="promote although the gate says no (required then; recorded)")
    sub.add_parser("sync")
    sub.add_parser("gate")
    sub.add_parser("retrain")
    sub.add_parser("status")
    args = parser.parse_args(argv)
    if not RegistrySettings().enabled:
        raise SystemExit("MLFLOW_TRACKING_URI is unset: there is no registry to act on")
    try:
        if args.command == "promote":
            _promote_command(args)
        elif args.command == "rollback":
            print(f"decision {rollback(args.version, by=args.by, reason=args.reason)}: "
                  f"version {args.version} is champion again")
        elif args.command == "sync":
            print(json.dumps(sync_registered_versions().as_dict(), indent=2))
        elif args.command == "gate":
            decision = run_gate(by="command line")
            print("no challenger" if decision is None
                  else json.dumps(decision.as_dict(), indent=2, default=str))
        elif args.command == "retrain":
            registered = retrain(by="command line")
            print(f"challenger: version {registered.number} ({registered.model_version})")
        else:
            print(json.dumps(status(), indent=2, default=str))
    except LifecycleError as error:
        raise SystemExit(str(error)) from error
    except Exception as error:  # MLflow's "no such version" and the like: one line, not a trace
        from mlflow.exceptions import MlflowException

        if isinstance(error, MlflowException):
            raise SystemExit(f"registry: {error.message}") from error
        raise


if __name__ == "__main__":
    main()
