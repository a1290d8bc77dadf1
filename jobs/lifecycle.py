"""The model lifecycle: retrain a challenger, gate it, promote or roll back the champion.

    python -m jobs.lifecycle status
    python -m jobs.lifecycle promote --version N --by "<your name>" [--reason "..."]
    python -m jobs.lifecycle rollback --version N --by "<your name>" [--reason "..."]
    python -m jobs.lifecycle gate       (what the retrain_model DAG runs)
    python -m jobs.lifecycle retrain    (train a challenger now, whatever the condition)

Every decision is a `promotion_decisions` row (when, versions, metric values, automatic or by
whom, why) and tags on the MLflow version. The API follows the `champion` alias by itself.

Each step is one database transaction: a retraining's model-version row, its registry number and
its "register" decision commit together or not at all; so do a gate's reads and its decision.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core.settings import LifecycleSettings, RegistrySettings
from db.decisions import list_decisions, record_decision
from db.labels import count_labels_received_since, labelled_predictions
from db.model_versions import record_model_version, set_registry_version
from db.realized_performance import latest_realized_f1
from db.session import session_scope
from db.shadow_predictions import gate_rows
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
    log_gate_metrics,
    log_training_run,
    set_alias,
    tag_version,
    version_by_alias,
)

AUTOMATIC = "retrain_model DAG"


def gate_policy(settings: LifecycleSettings) -> GatePolicy:
    """The promotion gate's policy from the GATE_* settings."""
    return GatePolicy(metric=settings.gate_metric, min_rows=settings.gate_min_rows,
                      min_margin=settings.gate_min_margin, segment_tolerance=settings.gate_segment_tolerance,
                      min_segment_rows=settings.gate_min_segment_rows)


class LifecycleError(RuntimeError):
    """A lifecycle command that cannot be done as asked (no such version, no champion...)."""


def _number(version: RegisteredVersion | None) -> int | None:
    return None if version is None else version.number


def _record(session: Session, action: str, *, by: str, automatic: bool, reason: str,
            champion_before: int | None, challenger: int | None, champion_after: int | None,
            decision: GateDecision | None = None, registry: RegistrySettings | None = None) -> int:
    """A promotion_decisions row (in the caller's transaction), and the same facts as tags on the
    versions concerned."""
    decision_id = record_decision(
        session=session, action=action, champion_before=champion_before, challenger=challenger,
        champion_after=champion_after, metric=decision.metric if decision else None,
        champion_value=decision.champion if decision else None,
        challenger_value=decision.challenger if decision else None,
        rows=decision.rows if decision else None, reason=reason,
        details=json.loads(json.dumps(decision.as_dict(), default=str)) if decision else {},
        automatic=automatic, decided_by=by,
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


def promote(number: int, *, by: str, reason: str = "promoted by hand", automatic: bool = False,
            decision: GateDecision | None = None, registry: RegistrySettings | None = None) -> int:
    """Point `champion` at version `number` (and drop `challenger` if it pointed there)."""
    before = version_by_alias(CHAMPION, registry)
    target = admissible(number, registry)
    challenger = version_by_alias(CHALLENGER, registry)
    set_alias(CHAMPION, target.number, registry)
    if challenger is not None and challenger.number == number:
        delete_alias(CHALLENGER, registry)
    with session_scope() as session:
        return _record(session, "promote", by=by, automatic=automatic, reason=reason,
                       champion_before=_number(before), challenger=number, champion_after=number,
                       decision=decision, registry=registry)


def rollback(number: int, *, by: str, reason: str = "rolled back by hand",
             registry: RegistrySettings | None = None) -> int:
    """Point `champion` back at an earlier version `number`."""
    before = version_by_alias(CHAMPION, registry)
    if before is not None and number >= before.number:
        raise LifecycleError(f"version {number} is not earlier than the champion "
                             f"(version {before.number}); use promote")
    target = admissible(number, registry)
    set_alias(CHAMPION, target.number, registry)
    with session_scope() as session:
        return _record(session, "rollback", by=by, automatic=False, reason=reason,
                       champion_before=_number(before), challenger=None, champion_after=number,
                       registry=registry)


def run_gate(settings: LifecycleSettings | None = None, registry: RegistrySettings | None = None,
             by: str = AUTOMATIC) -> GateDecision | None:
    """Judge the challenger on the labelled customers both models scored since it was registered.

    Promotes it, or rejects it (alias removed, decision recorded with the reasons), or, with too few
    labelled customers yet, leaves it in shadow. None when there is no challenger.
    """
    settings = settings or LifecycleSettings()
    challenger, champion = version_by_alias(CHALLENGER, registry), version_by_alias(CHAMPION, registry)
    if challenger is None or champion is None:
        return None
    since = datetime.fromisoformat(challenger.tags.get("registered_at", "1970-01-01T00:00:00+00:00"))
    with session_scope() as session:
        rows = gate_rows(session=session, champion=champion.model_version,
                         challenger=challenger.model_version, since=since)
    decision = evaluate_gate(EvaluationSet.from_rows(rows), gate_policy(settings))
    log_gate_metrics(challenger.run_id, gate_figures(decision), registry)  # on the challenger's run
    if decision.promote:
        promote(challenger.number, by=by, automatic=True, decision=decision, registry=registry,
                reason=f"gate: {decision.metric} {decision.challenger:.4f} vs {decision.champion:.4f} "
                       f"on {decision.rows} labelled customers, no segment regression")
    elif decision.enough_rows:
        delete_alias(CHALLENGER, registry)
        with session_scope() as session:
            _record(session, "reject", by=by, automatic=True, reason="; ".join(decision.reasons),
                    champion_before=champion.number, challenger=challenger.number,
                    champion_after=champion.number, decision=decision, registry=registry)
    return decision


@dataclass(frozen=True)
class RetrainCheck:
    retrain: bool
    reason: str


def should_retrain(settings: LifecycleSettings | None = None,
                   registry: RegistrySettings | None = None) -> RetrainCheck:
    """Retrain when no challenger waits and enough new labels arrived since the champion was
    trained, or the champion's latest realized F1 fell below its training F1 with the 95 %
    interval excluding it."""
    settings = settings or LifecycleSettings()
    if version_by_alias(CHALLENGER, registry) is not None:
        return RetrainCheck(False, "a challenger is already waiting for the gate")
    champion = version_by_alias(CHAMPION, registry)
    if champion is None:
        return RetrainCheck(False, "no champion registered")
    trained_at = datetime.fromisoformat(champion.tags["trained_at"])
    with session_scope() as session:
        new = count_labels_received_since(session=session, since=trained_at)
        realized = latest_realized_f1(session=session, model_version=champion.model_version)
    if new >= settings.retrain_min_new_labels:
        return RetrainCheck(True, f"{new} new labels since the champion was trained "
                                  f"(RETRAIN_MIN_NEW_LABELS={settings.retrain_min_new_labels})")
    if realized is not None:
        f1, low, high, training = realized
        if training is not None and low is not None and high is not None and high < training:
            return RetrainCheck(True, f"realized F1 {f1:.3f} (95 % interval {low:.3f}-{high:.3f}) "
                                      f"below the training F1 {training:.3f}")
    return RetrainCheck(False, f"{new} new labels of {settings.retrain_min_new_labels} needed; "
                               "realized F1 not significantly below training")


def retrain(
    by: str = AUTOMATIC, reason: str = "asked", registry: RegistrySettings | None = None,
) -> RegisteredVersion:
    """Train on the original training split plus every labelled serving row; register the result
    as `challenger`, load its drift baseline into the database and record the registration."""
    from model.train import train  # scikit-learn and friends: only when a retraining runs

    with session_scope() as session:
        judged = labelled_predictions(session=session)
    extra = judged.assign(**{TARGET: judged["outcome"].map({1: "Yes", 0: "No"})})
    champion = version_by_alias(CHAMPION, registry)
    with tempfile.TemporaryDirectory(prefix="churn-retrain-") as folder:
        metadata = train(out_dir=Path(folder), extra_rows=extra)
        registered = log_training_run(Path(folder), alias=CHALLENGER, settings=registry,
                                      extra_params={"serving_rows_added": metadata["serving_rows_added"]})
        assert registered is not None, "MLFLOW_TRACKING_URI is unset: nowhere to register a challenger"
        saved = json.loads((Path(folder) / METADATA_FILE).read_text())
    with session_scope() as session:  # the version's records and its decision: all or nothing
        record_model_version(session=session, metadata=saved)
        set_registry_version(session=session, model_version=registered.model_version,
                             registry_version=registered.number)
        _record(session, "register", by=by, automatic=by == AUTOMATIC, registry=registry,
                reason=f"retrained ({reason}) on {metadata['training_rows']} rows, "
                       f"{metadata['serving_rows_added']} of them labelled serving rows",
                champion_before=_number(champion), challenger=registered.number,
                champion_after=_number(champion))
    return get_version(registered.number, registry)


def promotion_gate_step(by: str = AUTOMATIC) -> dict[str, Any] | None:
    """The retrain_model DAG's `promotion-gate` task: run the gate; what it decided, or None when
    no challenger waits."""
    decision = run_gate(by=by)
    return None if decision is None else {"promote": decision.promote, "reasons": decision.reasons,
                                          "rows": decision.rows}


def retrain_if_needed(by: str = AUTOMATIC) -> RetrainCheck | RegisteredVersion:
    """The retrain_model DAG's `retrain-if-needed` task: the registered challenger, or the check
    that said no (the task is then skipped with its reason)."""
    check = should_retrain()
    if not check.retrain:
        return check
    return retrain(by=by, reason=check.reason)


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Promote, roll back, gate or retrain the churn model.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("promote", "rollback"):
        command = sub.add_parser(name)
        command.add_argument("--version", type=int, required=True, help="MLflow version number")
        command.add_argument("--by", required=True, help="who decides (recorded)")
        done = "promoted" if name == "promote" else "rolled back"
        command.add_argument("--reason", default=f"{done} by hand")
    sub.add_parser("gate")
    sub.add_parser("retrain")
    sub.add_parser("status")
    args = parser.parse_args(argv)
    if not RegistrySettings().enabled:
        raise SystemExit("MLFLOW_TRACKING_URI is unset: there is no registry to act on")
    try:
        if args.command == "promote":
            print(f"decision {promote(args.version, by=args.by, reason=args.reason)}: "
                  f"version {args.version} is champion")
        elif args.command == "rollback":
            print(f"decision {rollback(args.version, by=args.by, reason=args.reason)}: "
                  f"version {args.version} is champion again")
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
