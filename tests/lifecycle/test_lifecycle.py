"""Retrain, gate, promote and roll back against a real MLflow server and the real database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from sqlalchemy import text

from core.settings import LifecycleSettings, RegistrySettings
from db import predictions as stored_predictions
from db import session as db_session
from db.session import session_scope
from db.shadow_predictions import store_shadow_predictions
from jobs.lifecycle import (
    LifecycleError,
    promote,
    recent_decisions,
    retrain,
    rollback,
    run_gate,
    should_retrain,
)
from model.registry import CHALLENGER, CHAMPION, log_training_run, version_by_alias
from model.train import train
from tests.dags.webhook_server import start_webhook
from tests.factories import customer_record
from tests.lifecycle.broken_versions import delete_run_artifacts

SETTINGS = LifecycleSettings(retrain_min_new_labels=20, gate_min_rows=100, gate_min_margin=0.02,
                             gate_segment_tolerance=0.05, gate_min_segment_rows=20)
CONTRACTS = ("Month-to-month", "One year", "Two year")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifacts")
    train(out_dir=out)
    return out


def _served(version: str, n: int, start: datetime, prefix: str) -> list[int]:
    """n predictions of `version`, one per customer, with labels known an hour later; returns ids."""
    rng = np.random.default_rng(len(prefix) + n)
    ids = []
    with db_session.session_scope() as session:
        for i in range(n):
            record = customer_record(customer_id=f"{prefix}{i}", contract=CONTRACTS[i % 3],
                                     tenure=int(rng.integers(0, 72)))
            (id_,) = stored_predictions.create_predictions(
                session=session, source="scheduled", records=[record], labels=[i % 2],
                probabilities=[0.6 if i % 2 else 0.3], model_version=version,
                created_at=start + timedelta(seconds=i)).ids
            ids.append(id_)
        session.execute(text("""
            INSERT INTO label_files (file_name, checksum, rows, stored_rows, invalid_rows, duplicate_rows,
                                     contradictory_rows, matched_rows, outcome, errors)
            VALUES (:name, :checksum, 0, 0, 0, 0, 0, 0, 'good', '{}')"""),
            {"name": prefix, "checksum": prefix})
        # the truth: odd customers churned, so the champion (label = i % 2) is always right
        session.execute(text("""
            INSERT INTO labels (customer_id, churn, known_at, label_file_id, prediction_id)
            SELECT p.customer_id, (p.predicted_label), p.created_at + interval '1 hour',
                   (SELECT max(id) FROM label_files), p.id
            FROM predictions p WHERE p.id = ANY(:ids)"""), {"ids": ids})
    return ids


def _shadow(ids: list[int], version: str, right: Callable[[int], bool]) -> None:
    """The challenger's shadow scores: right about customer i when right(i)."""
    labels = [(i % 2) if right(i) else 1 - (i % 2) for i in range(len(ids))]
    with session_scope() as session:
        store_shadow_predictions(session=session, prediction_ids=ids, model_version=version, labels=labels,
                                 probabilities=[0.7 if label else 0.2 for label in labels])


def _challenger_beats_champion(champion: str, challenger: str) -> None:
    """150 recent predictions with outcomes: the champion wrong about every 4th, the challenger's
    shadow scores right about all of them (a clear gain: the gate promotes)."""
    ids = _served(champion, 150, datetime.now(UTC), "new")
    with db_session.get_engine().begin() as connection:
        connection.execute(text("UPDATE predictions SET predicted_label = 1 - predicted_label "
                                "WHERE id = ANY(:ids) AND (id - :first) % 4 = 0"),
                           {"ids": ids, "first": ids[0]})
    _shadow(ids, challenger, lambda i: True)


@pytest.fixture
def champion_and_challenger(clean_db: str, trained: Path, registry_settings: RegistrySettings):  # type: ignore[no-untyped-def]
    champion = log_training_run(trained, alias=CHAMPION, settings=registry_settings)
    assert champion is not None
    _served(champion.model_version, 60, datetime(2026, 1, 1, tzinfo=UTC), "old")
    assert should_retrain(SETTINGS, registry_settings).retrain
    challenger = retrain(reason="test", registry=registry_settings)
    assert challenger.model_version != champion.model_version
    assert version_by_alias(CHALLENGER, registry_settings).number == challenger.number  # type: ignore[union-attr]
    assert not should_retrain(SETTINGS, registry_settings).retrain  # a challenger waits
    return champion, challenger


def test_the_gate_waits_for_enough_labelled_customers(champion_and_challenger, registry_settings) -> None:  # type: ignore[no-untyped-def]
    champion, challenger = champion_and_challenger
    ids = _served(champion.model_version, 50, datetime.now(UTC), "new")
    _shadow(ids, challenger.model_version, lambda i: True)
    decision = run_gate(SETTINGS, registry_settings)
    assert decision is not None and not decision.promote and not decision.enough_rows
    assert version_by_alias(CHALLENGER, registry_settings) is not None  # still in shadow


def test_the_gate_refuses_a_worse_challenger(champion_and_challenger, registry_settings) -> None:  # type: ignore[no-untyped-def]
    champion, challenger = champion_and_challenger
    ids = _served(champion.model_version, 150, datetime.now(UTC), "new")
    _shadow(ids, challenger.model_version, lambda i: i % 4 != 0)  # wrong about a quarter
    decision = run_gate(SETTINGS, registry_settings)
    assert decision is not None and not decision.promote
    assert decision.reasons[0].startswith("f1: challenger")
    assert version_by_alias(CHAMPION, registry_settings).number == champion.number  # type: ignore[union-attr]
    assert version_by_alias(CHALLENGER, registry_settings) is None  # rejected
    (latest, *_) = recent_decisions()
    assert (latest["action"], latest["champion_after"], latest["challenger"]) == (
        "reject", champion.number, challenger.number)
    assert latest["automatic"] and latest["rows"] == 150 and latest["reason"].startswith("f1: challenger")
    tags = MlflowClient(registry_settings.mlflow_tracking_uri).get_model_version(
        registry_settings.mlflow_model_name, str(challenger.number)).tags
    assert tags["last_decision"] == "reject"


def test_the_gate_refuses_a_segment_regression(champion_and_challenger, registry_settings) -> None:  # type: ignore[no-untyped-def]
    champion, challenger = champion_and_challenger
    # the champion is wrong about every month-to-month customer, the challenger is right about
    # them but wrong about half the two-year ones: better overall, worse on one segment
    ids = _served(champion.model_version, 300, datetime.now(UTC), "new")
    with db_session.get_engine().begin() as connection:
        connection.execute(text("UPDATE predictions SET predicted_label = 1 - predicted_label "
                                "WHERE id = ANY(:ids) AND contract = 'Month-to-month'"), {"ids": ids})
    _shadow(ids, challenger.model_version, lambda i: not (CONTRACTS[i % 3] == "Two year" and i % 4 < 2))
    decision = run_gate(SETTINGS, registry_settings)
    assert decision is not None and not decision.promote
    assert decision.challenger > decision.champion  # type: ignore[operator]
    assert any(r.startswith("segment contract=Two year") for r in decision.reasons)
    assert version_by_alias(CHALLENGER, registry_settings) is None


def test_a_better_challenger_is_promoted_then_rolled_back(champion_and_challenger, registry_settings) -> None:  # type: ignore[no-untyped-def]
    champion, challenger = champion_and_challenger
    _challenger_beats_champion(champion.model_version, challenger.model_version)
    decision = run_gate(SETTINGS, registry_settings)
    assert decision is not None and decision.promote, decision
    assert version_by_alias(CHAMPION, registry_settings).number == challenger.number  # type: ignore[union-attr]
    assert version_by_alias(CHALLENGER, registry_settings) is None
    with pytest.raises(LifecycleError, match="not earlier than the champion"):
        rollback(challenger.number, by="alice", registry=registry_settings)
    rollback(champion.number, by="alice", reason="incident 42", registry=registry_settings)
    assert version_by_alias(CHAMPION, registry_settings).number == champion.number  # type: ignore[union-attr]
    rolled, promoted, *_ = recent_decisions()
    assert (rolled["action"], rolled["decided_by"], rolled["automatic"], rolled["reason"]) == (
        "rollback", "alice", False, "incident 42")
    assert (rolled["champion_before"], rolled["champion_after"]) == (challenger.number, champion.number)
    assert (promoted["action"], promoted["automatic"], promoted["metric"]) == ("promote", True, "f1")
    assert promoted["challenger_value"] > promoted["champion_value"]
    promote(challenger.number, by="bob", settings=SETTINGS, registry=registry_settings)  # the gate as above
    assert recent_decisions()[0]["decided_by"] == "bob"


def test_a_better_challenger_that_cannot_be_served_is_rejected_at_admission_not_promoted(  # type: ignore[no-untyped-def]
    champion_and_challenger, registry_settings, monkeypatch,
) -> None:
    champion, challenger = champion_and_challenger
    _challenger_beats_champion(champion.model_version, challenger.model_version)  # the gate would promote it
    delete_run_artifacts(challenger.run_id, registry_settings)  # but its artifacts are gone
    webhook, server = start_webhook()
    monkeypatch.setenv("TEAMS_WEBHOOK_URL", webhook.url)
    try:
        decision = run_gate(SETTINGS, registry_settings)  # no exception: the DAG task succeeds
    finally:
        server.shutdown()
        server.server_close()

    assert decision is not None and not decision.promote
    assert decision.reasons[0].startswith("refused at admission (unloadable): its artifacts could not be")
    assert version_by_alias(CHAMPION, registry_settings).number == champion.number  # type: ignore[union-attr]
    assert version_by_alias(CHALLENGER, registry_settings) is None
    (latest, *_) = recent_decisions()
    assert (latest["action"], latest["automatic"], latest["challenger"], latest["champion_after"]) == (
        "reject", True, challenger.number, champion.number)
    assert latest["details"]["admission"]["reason"] == "unloadable"
    assert latest["reason"].startswith("refused at admission (unloadable)")
    [card] = [m["attachments"][0]["content"] for m in webhook.received]
    assert "promotion gate rejected challenger version" in card["body"][0]["text"]
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert (facts["Alias"], facts["Reason"]) == ("challenger", "unloadable")
    run = MlflowClient(registry_settings.mlflow_tracking_uri).get_run(challenger.run_id)
    assert run.data.metrics["gate_promote"] == 0  # the gate's figures on the challenger's run
    assert run_gate(SETTINGS, registry_settings) is None  # nothing waits any more
