"""Decisions on settled outcomes only, one retraining at a time, aliases by compare-and-set, a
manual promote judged by the gate: real MLflow server, real PostgreSQL, real training."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from core.settings import LifecycleSettings, RegistrySettings
from db import predictions as stored_predictions
from db import session as db_session
from db.locks import REGISTRY_ALIASES, RETRAINING, advisory_lock
from db.shadow_predictions import gate_rows, store_shadow_predictions
from jobs.lifecycle import (
    AliasConflictError,
    GateVerdictError,
    RetrainCheck,
    RetrainingRunningError,
    gate_policy,
    main,
    promote,
    recent_decisions,
    retrain,
    retrain_if_needed,
    run_gate,
    should_retrain,
)
from jobs.realized import refresh_realized_performance
from model.data import load_dataset
from model.gate import EvaluationSet, evaluate_gate
from model.registry import (
    CHALLENGER,
    CHAMPION,
    RegisteredVersion,
    delete_alias,
    log_training_run,
    set_alias,
    version_by_alias,
)
from model.train import train
from tests.factories import customer_record

SETTINGS = LifecycleSettings(retrain_min_new_labels=10_000, gate_min_rows=100, gate_min_margin=0.02,
                             gate_segment_tolerance=0.05, gate_min_segment_rows=20)
CONTRACTS = ("Month-to-month", "One year", "Two year")
CHURNERS, STAYERS = 108, 292  # the dataset's churn rate, 27 %


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two trained versions: the dataset's, and one with a few extra rows (another version)."""
    base, other = tmp_path_factory.mktemp("champion"), tmp_path_factory.mktemp("challenger")
    train(out_dir=base)
    extra = load_dataset().head(50)
    extra["customer_id"] = "X-" + extra["customer_id"]
    train(out_dir=other, extra_rows=extra)
    return base, other


@pytest.fixture
def champion(clean_db: str, artifacts: tuple[Path, Path],
             registry_settings: RegistrySettings) -> RegisteredVersion:
    registered = log_training_run(artifacts[0], alias=CHAMPION, settings=registry_settings)
    assert registered is not None
    return registered


@pytest.fixture
def challenger(champion: RegisteredVersion, artifacts: tuple[Path, Path],
               registry_settings: RegistrySettings) -> RegisteredVersion:
    registered = log_training_run(artifacts[1], alias=CHALLENGER, settings=registry_settings)
    assert registered is not None and registered.model_version != champion.model_version
    return registered


def _population(version: str, champion_labels: Sequence[int], prefix: str,
                created_at: datetime) -> list[int]:
    """One prediction per customer by `version` (label as given), all at `created_at`."""
    records = [customer_record(customer_id=f"{prefix}{i}", contract=CONTRACTS[i % 3], tenure=(7 * i) % 72)
               for i in range(len(champion_labels))]
    with db_session.session_scope() as session:
        return stored_predictions.create_predictions(
            session=session, source="scheduled", records=records, labels=list(champion_labels),
            probabilities=[0.7 if label else 0.2 for label in champion_labels], model_version=version,
            created_at=created_at).ids


def _label(ids: Sequence[int], outcomes: Sequence[int], name: str) -> None:
    """Outcomes of these predictions, known a second after them (stored as ingestion would)."""
    with db_session.session_scope() as session:
        session.execute(text("""
            INSERT INTO label_files (file_name, checksum, rows, stored_rows, invalid_rows, duplicate_rows,
                                     contradictory_rows, matched_rows, outcome, errors)
            VALUES (:name, :checksum, 0, 0, 0, 0, 0, 0, 'good', '{}')"""), {"name": name, "checksum": name})
        session.execute(text("""
            INSERT INTO labels (customer_id, churn, known_at, label_file_id, prediction_id)
            SELECT p.customer_id, o.churn, p.created_at + interval '1 second',
                   (SELECT max(id) FROM label_files), p.id
            FROM unnest(CAST(:ids AS bigint[]), CAST(:outcomes AS smallint[])) AS o(id, churn)
            JOIN predictions p ON p.id = o.id"""), {"ids": list(ids), "outcomes": list(outcomes)})


def _flags(truth: np.ndarray, churners_caught: int, stayers_flagged: int) -> np.ndarray:
    """Predicted labels catching the first `churners_caught` churners and flagging the first
    `stayers_flagged` stayers (the order is random, so any subset is representative)."""
    labels = np.zeros(len(truth), dtype=int)
    labels[np.flatnonzero(truth == 1)[:churners_caught]] = 1
    labels[np.flatnonzero(truth == 0)[:stayers_flagged]] = 1
    return labels


def _truth(seed: int) -> np.ndarray:
    truth = np.array([1] * CHURNERS + [0] * STAYERS)
    np.random.default_rng(seed).shuffle(truth)
    return truth


def _churners_first(truth: np.ndarray, seed: int) -> np.ndarray:
    """Who is labelled first: every churner (known at once) and 15 % of the stayers (renewed early)."""
    stayers = np.flatnonzero(truth == 0)
    early = np.random.default_rng(seed).choice(stayers, size=int(0.15 * len(stayers)), replace=False)
    return np.sort(np.concatenate([np.flatnonzero(truth == 1), early]))


def test_churners_first_outcomes_do_not_promote_a_worse_challenger(
    challenger: RegisteredVersion, champion: RegisteredVersion, registry_settings: RegistrySettings,
) -> None:
    """The champion: F1 0.62 on everyone; the challenger flags more: 0.58 on everyone, but on the
    churners-first labelled part it reads better (0.88 vs 0.81). The gate waits while the outcomes
    are unsettled, and rejects the challenger once the stayers' outcomes are in."""
    truth = _truth(1)
    ids = _population(champion.model_version, _flags(truth, 81, 73), "cf", datetime.now(UTC))
    shadow = _flags(truth, 103, 146)
    with db_session.session_scope() as session:
        store_shadow_predictions(session=session, prediction_ids=ids, model_version=challenger.model_version,
                                 labels=shadow.tolist(), probabilities=[0.7 if s else 0.2 for s in shadow])
    first = _churners_first(truth, 2)
    _label([ids[i] for i in first], truth[first].tolist(), "churners-first")
    with db_session.session_scope() as session:  # what the old gate judged: every labelled row
        labelled = evaluate_gate(EvaluationSet.from_rows(gate_rows(
            session=session, champion=champion.model_version, challenger=challenger.model_version,
            since=datetime(2000, 1, 1, tzinfo=UTC))), gate_policy(SETTINGS))
    assert labelled.challenger is not None and labelled.champion is not None
    assert labelled.challenger > labelled.champion + 0.05  # the trap: better on the labelled part

    waiting = run_gate(SETTINGS, registry_settings)
    assert waiting is not None and not waiting.promote and not waiting.enough_rows
    assert "151 more labelled customers are not settled yet" in waiting.reasons[-1]
    assert version_by_alias(CHALLENGER, registry_settings).number == challenger.number  # type: ignore[union-attr]

    rest = np.setdiff1d(np.arange(len(truth)), first)
    _label([ids[i] for i in rest], truth[rest].tolist(), "renewals")  # coverage now 100 %
    settled = run_gate(SETTINGS, registry_settings)
    assert settled is not None and not settled.promote and settled.enough_rows
    # F1 = 2 TP / (2 TP + FP + FN): the champion 162 / 262, the challenger 206 / 357
    assert (settled.champion, settled.challenger) == (pytest.approx(162 / 262), pytest.approx(206 / 357))
    assert version_by_alias(CHAMPION, registry_settings).number == champion.number  # type: ignore[union-attr]
    assert version_by_alias(CHALLENGER, registry_settings) is None
    assert recent_decisions(1)[0]["action"] == "reject"


def test_churners_first_outcomes_do_not_hide_a_real_drop(
    champion: RegisteredVersion, registry_settings: RegistrySettings,
) -> None:
    """The champion's true F1 is 0.45 (trained to 0.61); on the churners-first part it reads 0.63,
    inside its training F1. The window is not settled then, so the retrain rule does not read it;
    once the stayers' outcomes are in, the settled window shows the drop and retraining starts."""
    truth = _truth(3)
    made = datetime.now(UTC) - timedelta(hours=2)  # a closed window
    ids = _population(champion.model_version, _flags(truth, 54, 80), "drop", made)
    first = _churners_first(truth, 4)
    _label([ids[i] for i in first], truth[first].tolist(), "churners-first")
    refresh_realized_performance(SETTINGS)
    query = text("SELECT f1, f1_high, training_f1, coverage, settled FROM realized_performance "
                 "WHERE model_version = :v")
    with db_session.get_engine().connect() as connection:
        partial = connection.execute(query, {"v": champion.model_version}).one()
    assert partial.f1 > 0.6 and partial.f1_high >= partial.training_f1  # the drop is hidden here
    assert partial.coverage == pytest.approx(151 / 400) and not partial.settled
    check = should_retrain(SETTINGS, registry_settings)
    assert not check.retrain and "settled realized F1 not significantly below training" in check.reason

    rest = np.setdiff1d(np.arange(len(truth)), first)
    _label([ids[i] for i in rest], truth[rest].tolist(), "renewals")
    refresh_realized_performance(SETTINGS)
    with db_session.get_engine().connect() as connection:
        full = connection.execute(query, {"v": champion.model_version}).one()
    assert full.settled and full.f1 == pytest.approx(2 * 54 / (2 * 54 + 80 + 54))
    assert full.f1_high < full.training_f1
    check = should_retrain(SETTINGS, registry_settings)
    assert check.retrain and check.reason.startswith("settled realized F1 0.446"), check.reason


def test_the_trigger_counts_labels_since_the_last_attempt_and_backs_off_after_a_rejection(
    challenger: RegisteredVersion, champion: RegisteredVersion, registry_settings: RegistrySettings,
) -> None:
    truth = _truth(5)
    old = _population(champion.model_version, truth.tolist(), "old", datetime.now(UTC) - timedelta(days=40))
    _label(old, truth.tolist(), "old")  # 400 labels since the champion was trained
    every = SETTINGS.model_copy(update={"retrain_min_new_labels": 300, "retrain_backoff_minutes": 60})
    assert not should_retrain(every, registry_settings).retrain  # a challenger waits
    # the challenger is worse on 150 settled customers: rejected
    new = _population(champion.model_version, [i % 2 for i in range(150)], "new", datetime.now(UTC))
    with db_session.session_scope() as session:
        store_shadow_predictions(session=session, prediction_ids=new, model_version=challenger.model_version,
                                 labels=[(i % 2) if i % 4 else 1 - (i % 2) for i in range(150)],
                                 probabilities=[0.5] * 150)
    _label(new, [i % 2 for i in range(150)], "new")
    decision = run_gate(every, registry_settings)
    assert decision is not None and not decision.promote and decision.enough_rows
    backing_off = should_retrain(every, registry_settings)
    assert not backing_off.retrain and backing_off.reason.startswith(
        f"backing off: version {challenger.number} was rejected at ")
    assert "RETRAIN_BACKOFF_MINUTES=60" in backing_off.reason
    no_backoff = every.model_copy(update={"retrain_backoff_minutes": 0})
    check = should_retrain(no_backoff, registry_settings)
    assert check.retrain and check.reason.startswith("550 new labels since the champion was trained")
    registered = retrain_if_needed(settings=no_backoff, registry=registry_settings)
    assert isinstance(registered, RegisteredVersion)
    delete_alias(CHALLENGER, registry_settings)  # as if the new one had been judged
    after = should_retrain(no_backoff, registry_settings)  # counted since that attempt: none new
    assert not after.retrain
    assert after.reason.startswith("0 new labels since the last retrain attempt, 300 needed")


def test_retrainings_never_overlap(champion: RegisteredVersion, registry_settings: RegistrySettings) -> None:
    with advisory_lock(RETRAINING, wait=False) as held:  # another retraining runs (any process)
        assert held
        skipped = retrain_if_needed(settings=SETTINGS, registry=registry_settings)
        assert skipped == RetrainCheck(False, "another retraining is running")
        with pytest.raises(RetrainingRunningError, match="another retraining is running"):
            retrain(reason="by hand", registry=registry_settings)
    with db_session.get_engine().connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM retrain_attempts")).scalar() == 0


def test_a_challenger_displaced_before_its_decision_is_recorded_as_superseded(
    challenger: RegisteredVersion, champion: RegisteredVersion, registry_settings: RegistrySettings,
) -> None:
    newer = retrain(by="alice", reason="by hand", registry=registry_settings)
    assert version_by_alias(CHALLENGER, registry_settings).number == newer.number  # type: ignore[union-attr]
    register, superseded, *_ = recent_decisions()
    assert (register["action"], register["challenger"], register["champion_before"]) == (
        "register", newer.number, champion.number)
    assert (superseded["action"], superseded["challenger"], superseded["decided_by"]) == (
        "superseded", challenger.number, "alice")
    assert superseded["reason"] == f"displaced by version {newer.number} before the gate judged it"
    with db_session.get_engine().connect() as connection:
        attempt = connection.execute(text("SELECT outcome, registry_version FROM retrain_attempts")).one()
    assert tuple(attempt) == ("registered", newer.number)


def test_an_alias_moved_during_a_gate_decision_stops_it_and_is_recorded(
    challenger: RegisteredVersion, champion: RegisteredVersion, registry_settings: RegistrySettings,
) -> None:
    """The gate decides to promote; before it moves the alias, a person points `champion` at the
    challenger by hand (in MLflow's UI, say). The compare-and-set sees the change: nothing moves,
    a `conflict` decision says what happened."""
    labels = [i % 2 for i in range(150)]
    ids = _population(champion.model_version, [1 - y if i % 4 == 0 else y for i, y in enumerate(labels)],
                      "cas", datetime.now(UTC))
    with db_session.session_scope() as session:
        store_shadow_predictions(session=session, prediction_ids=ids, model_version=challenger.model_version,
                                 labels=labels, probabilities=[0.7 if y else 0.2 for y in labels])
    _label(ids, labels, "cas")
    outcome: dict[str, Any] = {}

    def gate() -> None:
        try:
            outcome["decision"] = run_gate(SETTINGS, registry_settings)
        except AliasConflictError as error:
            outcome["conflict"] = error

    with advisory_lock(REGISTRY_ALIASES, wait=True):  # the gate will wait here, its basis read
        thread = threading.Thread(target=gate)
        thread.start()
        thread.join(timeout=20)  # it blocks on the lock: still running
        assert thread.is_alive()
        set_alias(CHAMPION, challenger.number, registry_settings)  # the person's move
    thread.join(timeout=60)
    assert "conflict" in outcome, outcome
    conflict = recent_decisions(1)[0]
    assert conflict["action"] == "conflict" and conflict["details"]["attempted"] == "promote"
    assert conflict["reason"].startswith(f"promote of version {challenger.number} refused: the aliases moved")
    assert version_by_alias(CHALLENGER, registry_settings).number == challenger.number  # type: ignore[union-attr]


def test_a_manual_promote_shows_the_gate_verdict_and_needs_a_reason_to_override_it(
    challenger: RegisteredVersion, champion: RegisteredVersion, registry_settings: RegistrySettings,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATE_MIN_ROWS", "100")
    labels = [i % 2 for i in range(150)]
    ids = _population(champion.model_version, labels, "manual", datetime.now(UTC))
    worse = [1 - y if i % 4 == 0 else y for i, y in enumerate(labels)]  # wrong about a quarter
    with db_session.session_scope() as session:
        store_shadow_predictions(session=session, prediction_ids=ids, model_version=challenger.model_version,
                                 labels=worse, probabilities=[0.7 if y else 0.2 for y in worse])
    _label(ids, labels, "manual")
    with pytest.raises(GateVerdictError):
        promote(challenger.number, by="carol", registry=registry_settings)
    with pytest.raises(SystemExit, match="add --override-reason"):
        main(["promote", "--version", str(challenger.number), "--by", "carol"])
    printed = capsys.readouterr().out
    assert printed.startswith("gate verdict: do not promote: f1 ")
    assert "settled labelled customers" in printed and "  - f1: challenger" in printed
    assert version_by_alias(CHAMPION, registry_settings).number == champion.number  # type: ignore[union-attr]
    main(["promote", "--version", str(challenger.number), "--by", "carol",
          "--override-reason", "incident 7: the champion's feature pipeline is broken"])
    printed = capsys.readouterr().out
    assert "gate verdict: against (overridden: incident 7" in printed
    assert version_by_alias(CHAMPION, registry_settings).number == challenger.number  # type: ignore[union-attr]
    decision = recent_decisions(1)[0]
    assert (decision["action"], decision["decided_by"], decision["automatic"]) == ("promote", "carol", False)
    assert decision["details"]["override_reason"] == "incident 7: the champion's feature pipeline is broken"
    assert "against the gate (f1: challenger" in decision["reason"]
