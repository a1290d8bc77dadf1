"""The retrain_model DAG and the registry (real Airflow `dag.test()`, the real MLflow server, real
PostgreSQL): every registered version gets its database row, however it was registered and with no
alias (`python -m model.train --alias none`, by hand in MLflow with no tag at all), through the
`sync-registered-versions` step; a challenger admission refuses is rejected by the
`promotion-gate` step, which succeeds, the champion untouched."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from core.settings import RegistrySettings
from db.session import session_scope
from jobs.lifecycle import recent_decisions, sync_registered_versions
from model.files import METADATA_FILE
from model.registry import (
    CHALLENGER,
    CHAMPION,
    RUN_ARTIFACTS,
    get_version,
    log_training_run,
    version_by_alias,
)
from model.train import train
from tests.lifecycle.broken_versions import register_unchecked, with_renamed_input, with_version_suffix
from tests.mlflow_server import mlflow_url, registry_settings  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    train(out_dir=folder)
    return folder


def register_by_hand(artifacts: Path, settings: RegistrySettings) -> int:
    """What a person does with MLflow's client: log a run holding the artifacts folder and create a
    version of the model from it, with no tag and no alias (nothing of model/registry.py)."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment("by-hand")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(artifacts), RUN_ARTIFACTS)
    return _create_version(settings, run.info.run_id, f"{run.info.artifact_uri}/{RUN_ARTIFACTS}")


def _create_version(settings: RegistrySettings, run_id: str, source: str) -> int:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(settings.mlflow_tracking_uri)
    with contextlib.suppress(MlflowException):  # registered already
        client.create_registered_model(settings.mlflow_model_name)
    return int(client.create_model_version(settings.mlflow_model_name, source, run_id=run_id).version)


def register_not_ours(settings: RegistrySettings, folder: Path) -> int:
    """A version whose run holds no metadata.json (some other model registered under our name)."""
    import mlflow

    (folder / "README.txt").write_text("not a churn model")
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(folder / "README.txt"), "other")
    return _create_version(settings, run.info.run_id, f"{run.info.artifact_uri}/other")


def stored_row(model_version: str) -> dict[str, Any] | None:
    with session_scope() as session:
        row = session.execute(text(
            "SELECT m.registry_version, m.threshold, m.metrics->>'f1' AS f1, m.served_since, "
            "(SELECT count(*) FROM model_calibration c WHERE c.model_version = m.model_version) "
            "AS calibration, "
            "(SELECT count(*) FROM baseline_features b WHERE b.model_version = m.model_version) AS features, "
            "(SELECT count(*) FROM baseline_bins b WHERE b.model_version = m.model_version) AS bins "
            "FROM model_versions m WHERE m.model_version = :v"), {"v": model_version}).mappings().first()
    return None if row is None else dict(row)


def _metadata(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / METADATA_FILE).read_text()))


def test_versions_registered_with_no_alias_by_training_or_by_hand_get_their_rows(
    clean_db: str, trained: Path, registry_settings: RegistrySettings, tmp_path: Path,  # noqa: F811
) -> None:
    trainer = with_version_suffix(trained, tmp_path / "trainer", "-no-alias")
    by_hand = with_version_suffix(trained, tmp_path / "hand", "-by-hand")
    registered = log_training_run(trainer, alias=None, settings=registry_settings)
    assert registered is not None and registered.aliases == ()
    hand_number = register_by_hand(by_hand, registry_settings)
    other_number = register_not_ours(registry_settings, tmp_path)
    assert get_version(hand_number, registry_settings).tags == {}  # no model_version tag, no alias
    assert stored_row(registered.model_version) is None  # before: no alias, no row

    done = sync_registered_versions(registry_settings)

    assert sorted(done.recorded) == [registered.number, hand_number]
    assert list(done.unreadable) == [other_number] and "metadata.json" in done.unreadable[other_number]
    for number, folder in ((registered.number, trainer), (hand_number, by_hand)):
        metadata = _metadata(folder)
        row = stored_row(metadata["model_version"])
        assert row is not None, number
        assert row["registry_version"] == number
        assert row["threshold"] == pytest.approx(metadata["threshold"])
        assert float(row["f1"]) == pytest.approx(metadata["metrics"]["f1"])
        assert row["calibration"] == 1  # estimated performance (CBPE) can read it
        assert row["features"] == len(metadata["baseline"]) and row["bins"] > row["features"]  # drift
        assert row["served_since"] is None  # recorded, not served
    tags = get_version(hand_number, registry_settings).tags
    assert tags["model_version"] == _metadata(by_hand)["model_version"]
    assert {"trained_at", "registered_at", "run_id", "holdout_f1"} <= set(tags)
    assert done.tagged == [hand_number]

    again = sync_registered_versions(registry_settings)  # the next run: nothing left but the foreign one
    assert (again.recorded, again.numbered, again.tagged) == ([], [], [])
    assert list(again.unreadable) == [other_number]


def test_a_row_without_its_registry_number_gets_it(
    clean_db: str, trained: Path, registry_settings: RegistrySettings, tmp_path: Path,  # noqa: F811
) -> None:
    folder = with_version_suffix(trained, tmp_path / "numbered", "-numbered")
    registered = log_training_run(folder, alias=None, settings=registry_settings)
    assert registered is not None
    from db.model_versions import record_model_version

    with session_scope() as session:  # what an API admitting the local artifacts records: no number
        record_model_version(session=session, metadata=_metadata(folder))
    assert stored_row(registered.model_version)["registry_version"] is None  # type: ignore[index]

    done = sync_registered_versions(registry_settings)
    assert (done.recorded, done.numbered) == ([], [registered.number])
    assert stored_row(registered.model_version)["registry_version"] == registered.number  # type: ignore[index]


def test_the_retrain_dag_gives_a_version_registered_by_hand_its_row(
    clean_db: str, trained: Path, registry_settings: RegistrySettings, tmp_path: Path,  # noqa: F811
    run_dag: Callable[..., Any],
) -> None:
    by_hand = with_version_suffix(trained, tmp_path / "hand", "-dag")
    number = register_by_hand(by_hand, registry_settings)
    version = _metadata(by_hand)["model_version"]
    assert stored_row(version) is None

    result = run_dag("retrain_model")

    assert result.task_states["sync-registered-versions"] == "success", result
    assert result.task_states["promotion-gate"] == "success", result
    row = stored_row(version)
    assert row is not None and row["registry_version"] == number and row["calibration"] == 1


def test_the_gate_step_rejects_a_challenger_admission_refuses_and_the_task_succeeds(
    clean_db: str, trained: Path, registry_settings: RegistrySettings, tmp_path: Path,  # noqa: F811
    run_dag: Callable[..., Any],
) -> None:
    champion = log_training_run(with_version_suffix(trained, tmp_path / "good", "-good"), alias=CHAMPION,
                                settings=registry_settings)
    assert champion is not None
    renamed = with_renamed_input(trained, tmp_path / "renamed")
    broken = register_unchecked(renamed, CHALLENGER, registry_settings)

    result = run_dag("retrain_model")

    assert result.task_states["promotion-gate"] == "success", result  # before: failed, retried, failed
    assert result.task_states["retrain-if-needed"] == "skipped", result  # backing off after a rejection
    assert version_by_alias(CHAMPION, registry_settings).number == champion.number  # type: ignore[union-attr]
    assert version_by_alias(CHALLENGER, registry_settings) is None
    latest = recent_decisions(1)[0]
    assert (latest["action"], latest["challenger"], latest["champion_after"]) == (
        "reject", broken.number, champion.number)
    assert latest["details"]["admission"]["reason"] == "graph_inputs"
    assert "tenure_months" in latest["details"]["admission"]["detail"]
