"""Admission (model/admission.py) on real trained versions, and the lifecycle CLI refusing to move an
alias to a version admission refuses (real MLflow server, `python -m jobs.lifecycle` subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.settings import RegistrySettings
from model.admission import AdmissionError, admit
from model.contract import canary_records
from model.files import METADATA_FILE, MODEL_FILE
from model.registry import CHAMPION, log_training_run, version_by_alias
from model.train import train
from tests.lifecycle.broken_versions import (
    RENAMED_TO,
    register_unchecked,
    run_lifecycle_cli,
    with_renamed_input,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    train(out_dir=out)
    return out


def _edited(trained: Path, tmp_path: Path, **changes: object) -> Path:
    folder = tmp_path / "edited"
    import shutil

    shutil.copytree(trained, folder)
    metadata = json.loads((folder / METADATA_FILE).read_text())
    metadata.update(changes)
    (folder / METADATA_FILE).write_text(json.dumps(metadata))
    return folder


def test_a_trained_version_is_admitted_and_its_canaries_were_recorded(trained: Path) -> None:
    predictor = admit(trained)
    recorded = predictor.metadata["canary"]["probabilities"]
    assert len(recorded) == len(canary_records()) == 5
    assert predictor.predict_proba(canary_records()).tolist() == pytest.approx(recorded, abs=1e-6)


def test_a_graph_expecting_a_renamed_input_is_refused_naming_it(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(AdmissionError) as refused:
        admit(with_renamed_input(trained, tmp_path / "renamed"))
    assert refused.value.reason == "graph_inputs"
    assert "missing ['tenure']" in refused.value.detail and RENAMED_TO in refused.value.detail


@pytest.mark.parametrize(("changes", "reason", "said"), [
    ({"threshold": 1.5}, "metadata", "threshold 1.5 is not a probability"),
    ({"threshold": 0}, "metadata", "threshold 0 is not a probability"),
    ({"features": ["tenure"]}, "metadata", "other features than the contract's"),
    ({"model_version": ""}, "metadata", "names no model_version"),
    ({"canary": {"probabilities": [0.5] * 5}}, "canary", "recorded at training"),
    ({"canary": {"probabilities": [0.5] * 3}}, "canary", "3 canary scores"),
])
def test_inconsistent_metadata_or_canary_scores_are_refused(
    trained: Path, tmp_path: Path, changes: dict[str, object], reason: str, said: str,
) -> None:
    with pytest.raises(AdmissionError) as refused:
        admit(_edited(trained, tmp_path, **changes))
    assert refused.value.reason == reason and said in refused.value.detail


def test_a_version_named_otherwise_than_the_registry_says_is_refused(trained: Path) -> None:
    with pytest.raises(AdmissionError, match="the registry 'churn-lr-other'"):
        admit(trained, expected_version="churn-lr-other")


def test_a_version_without_recorded_canaries_is_checked_against_its_own_pipeline(
    trained: Path, tmp_path: Path,
) -> None:
    folder = _edited(trained, tmp_path)
    metadata = json.loads((folder / METADATA_FILE).read_text())
    del metadata["canary"]  # trained before canaries were recorded
    (folder / METADATA_FILE).write_text(json.dumps(metadata))
    assert admit(folder).version == metadata["model_version"]


def test_missing_artifacts_are_refused_as_unloadable(trained: Path, tmp_path: Path) -> None:
    folder = _edited(trained, tmp_path)
    (folder / MODEL_FILE).unlink()
    with pytest.raises(AdmissionError) as refused:
        admit(folder)
    assert refused.value.reason == "unloadable" and "model.joblib" in refused.value.detail


def test_the_cli_refuses_to_promote_or_roll_back_to_a_version_that_cannot_serve(
    trained: Path, tmp_path: Path, registry_settings: RegistrySettings, clean_db: str,
) -> None:
    renamed = with_renamed_input(trained, tmp_path / "renamed")
    with pytest.raises(AdmissionError, match="graph_inputs"):  # our own training never registers it
        log_training_run(renamed, alias=None, settings=registry_settings)
    broken = register_unchecked(renamed, None, registry_settings)  # another trainer does
    good = log_training_run(trained, alias=CHAMPION, settings=registry_settings)
    assert good is not None and broken.number < good.number

    for command in ("promote", "rollback"):
        done = run_lifecycle_cli(registry_settings, command, "--version", str(broken.number), "--by", "test")
        assert done.returncode != 0, done.stdout
        assert f"version {broken.number} cannot be served (graph_inputs:" in done.stderr
        assert "missing ['tenure']" in done.stderr and "the champion alias was not moved" in done.stderr
        champion = version_by_alias(CHAMPION, registry_settings)
        assert champion is not None and champion.number == good.number
