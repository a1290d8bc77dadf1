"""The real API (uvicorn, over HTTP) never serves a version admission refuses: at start, on follow,
as challenger; the refusal shows in /health, /metrics and a Teams card (a real local receiver).
A version whose artifacts were deleted from the artifact store (`unloadable`) is refused the same
way, and by `python -m jobs.lifecycle promote`.
It follows a model deleted and registered again (same number 1, new run), and records the database
references of every version it admits, the served one being the drift reference."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from sqlalchemy import text

from core.settings import RegistrySettings
from db import session as db_session
from model.registry import (
    CHALLENGER,
    CHAMPION,
    delete_alias,
    log_training_run,
    set_alias,
    version_by_alias,
)
from model.train import train
from tests.api_server import start_api_server
from tests.dags.webhook_server import FakeTeamsWebhook, start_webhook
from tests.factories import customer_records
from tests.lifecycle.broken_versions import (
    delete_run_artifacts,
    forget_served_versions,
    register_unchecked,
    run_lifecycle_cli,
    with_renamed_input,
    with_version_suffix,
)

POLL_SECONDS = "0.5"


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Artifact folders: `a` and `b` (two servable versions), `renamed` (a graph input renamed)."""
    trained = tmp_path_factory.mktemp("trained")
    train(out_dir=trained)
    root = tmp_path_factory.mktemp("versions")
    return {"a": with_version_suffix(trained, root / "a", "-a"),
            "b": with_version_suffix(trained, root / "b", "-b"),
            "c": with_version_suffix(trained, root / "c", "-c"),
            "renamed": with_renamed_input(trained, root / "renamed")}


@pytest.fixture
def teams() -> Iterator[FakeTeamsWebhook]:
    webhook, server = start_webhook()
    yield webhook
    server.shutdown()
    server.server_close()


@pytest.fixture
def start_api(clean_db: str) -> Iterator[Callable[..., str]]:
    stops: list[Callable[[], None]] = []

    def start(registry: RegistrySettings, **env: str) -> str:
        base_url, stop = start_api_server(clean_db, env={
            "MLFLOW_TRACKING_URI": registry.mlflow_tracking_uri or "", "API_TOKEN": "",
            "MLFLOW_MODEL_NAME": registry.mlflow_model_name, "MODEL_POLL_SECONDS": POLL_SECONDS,
            "MODEL_STARTUP_WAIT_SECONDS": "50", **env})
        stops.append(stop)
        # on a loaded machine the first poll may outlast the startup wait: wait for its verdict
        _wait_for(lambda: _serving(base_url)["agrees_with_registry"] is True
                  or bool(_serving(base_url)["refusals"]), "the first poll's verdict", timeout=120)
        return base_url

    yield start
    for stop in stops:
        stop()
    forget_served_versions()


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def _serving(api: str) -> dict[str, Any]:
    return httpx.get(f"{api}/health", timeout=10).json()["serving"]


def _sample(metrics: str, name: str, **labels: str) -> float | None:
    for line in metrics.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def _predict_version(api: str) -> str:
    answer = httpx.post(f"{api}/predict", json={"source": "webapp", "records": customer_records(2)},
                        timeout=30)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["model_version"])


def test_a_champion_whose_graph_expects_a_renamed_input_is_refused_at_start(
    versions: dict[str, Path], registry_settings: RegistrySettings, start_api: Callable[..., str],
    teams: FakeTeamsWebhook,
) -> None:
    broken = register_unchecked(versions["renamed"], CHAMPION, registry_settings)
    api = start_api(registry_settings, MODEL_ARTIFACTS_DIR=str(versions["a"]), TEAMS_WEBHOOK_URL=teams.url)

    health = httpx.get(f"{api}/health", timeout=10)
    assert health.status_code == 200  # the local model serves and scores its canaries
    serving = health.json()["serving"]
    assert serving["served"]["source"] == "local"
    assert serving["served"]["champion"]["model_version"].endswith("-a")
    assert serving["registry"]["champion"]["registry_version"] == broken.number
    assert serving["registry"]["reachable"] is True and serving["registry"]["last_follow"]
    assert serving["agrees_with_registry"] is False
    [refusal] = serving["refusals"]
    assert (refusal["alias"], refusal["registry_version"], refusal["reason"]) == (
        "champion", broken.number, "graph_inputs")
    assert "tenure_months" in refusal["detail"]
    assert _predict_version(api).endswith("-a")  # every request answered, by the local model
    assert httpx.get(f"{api}/model", timeout=10).json()["serving"]["refusals"][0]["reason"] == "graph_inputs"

    metrics = httpx.get(f"{api}/metrics", timeout=10).text
    assert (_sample(metrics, "churn_model_admission_refusals_total", alias="champion",
                    version=str(broken.number), reason="graph_inputs") or 0) >= 1
    assert _sample(metrics, "churn_model_registry_agreement") == 0
    assert _sample(metrics, "churn_model_registry_reachable") == 1
    assert _sample(metrics, "churn_model_served_info", alias="champion") == 1

    _wait_for(lambda: len(teams.received) >= 1, "the Teams card of the refusal")
    time.sleep(2)  # polls go on: still one card per refused version and alias
    assert len(teams.received) == 1
    card = teams.received[0]["attachments"][0]["content"]
    assert "Model version refused" in card["body"][0]["text"]
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Reason"] == "graph_inputs" and facts["Alias"] == "champion"


def test_a_refused_challenger_is_not_shadowed_and_a_refused_champion_leaves_the_current_one_serving(
    versions: dict[str, Path], registry_settings: RegistrySettings, start_api: Callable[..., str],
) -> None:
    good = log_training_run(versions["a"], alias=CHAMPION, settings=registry_settings)
    assert good is not None
    api = start_api(registry_settings, MODEL_ARTIFACTS_DIR=str(versions["b"]))
    assert _serving(api)["served"]["champion"]["run_id"] == good.run_id
    assert _serving(api)["agrees_with_registry"] is True

    # every version it admits gets its references; the served one is the drift reference
    with db_session.session_scope() as session:
        row = session.execute(text(
            "SELECT m.served_since, m.registry_version, (SELECT count(*) FROM model_calibration c "
            "WHERE c.model_version = m.model_version) AS calibrations, drift_baseline_version() AS reference "
            "FROM model_versions m WHERE m.model_version = :v"), {"v": good.model_version}).one()
    assert row.served_since is not None and row.registry_version == good.number
    assert row.calibrations == 1 and row.reference == good.model_version

    broken = register_unchecked(versions["renamed"], CHALLENGER, registry_settings)
    _wait_for(lambda: [r["alias"] for r in _serving(api)["refusals"]] == ["challenger"],
              "the challenger refused")
    assert httpx.get(f"{api}/model", timeout=10).json()["challenger"] is None
    assert _predict_version(api) == good.model_version

    set_alias(CHAMPION, broken.number, registry_settings)  # moved by hand in MLflow, past the CLI
    _wait_for(lambda: "champion" in [r["alias"] for r in _serving(api)["refusals"]], "the champion refused")
    serving = _serving(api)
    assert serving["served"]["champion"]["run_id"] == good.run_id  # the current one keeps serving
    assert serving["agrees_with_registry"] is False
    assert _predict_version(api) == good.model_version
    assert _sample(httpx.get(f"{api}/metrics", timeout=10).text, "churn_model_registry_agreement") == 0

    set_alias(CHAMPION, good.number, registry_settings)
    delete_alias(CHALLENGER, registry_settings)
    _wait_for(lambda: _serving(api)["agrees_with_registry"] is True, "agreement once the aliases are fixed")
    assert _serving(api)["refusals"] == []


def test_a_model_deleted_and_registered_again_is_followed_by_its_run_not_its_number(
    versions: dict[str, Path], registry_settings: RegistrySettings, start_api: Callable[..., str],
) -> None:
    first = log_training_run(versions["a"], alias=CHAMPION, settings=registry_settings)
    assert first is not None and first.number == 1
    api = start_api(registry_settings)
    assert _serving(api)["served"]["champion"]["run_id"] == first.run_id

    mlflow = MlflowClient(registry_settings.mlflow_tracking_uri)
    mlflow.delete_registered_model(registry_settings.mlflow_model_name)
    again = log_training_run(versions["b"], alias=CHAMPION, settings=registry_settings)
    assert again is not None and again.number == 1 and again.run_id != first.run_id
    _wait_for(lambda: _serving(api)["served"]["champion"]["run_id"] == again.run_id,
              "the new version 1 served")
    assert _predict_version(api) == again.model_version
    assert _serving(api)["agrees_with_registry"] is True


def _unloadable(api: str, alias: str) -> dict[str, Any] | None:
    return next((r for r in _serving(api)["refusals"] if r["alias"] == alias and r["reason"] == "unloadable"),
                None)


def test_a_champion_whose_artifacts_were_deleted_is_refused_at_start_as_unloadable(
    versions: dict[str, Path], registry_settings: RegistrySettings, start_api: Callable[..., str],
    teams: FakeTeamsWebhook,
) -> None:
    gone = log_training_run(versions["b"], alias=CHAMPION, settings=registry_settings)
    assert gone is not None
    delete_run_artifacts(gone.run_id, registry_settings)
    api = start_api(registry_settings, MODEL_ARTIFACTS_DIR=str(versions["a"]), TEAMS_WEBHOOK_URL=teams.url)

    health = httpx.get(f"{api}/health", timeout=10)
    assert health.status_code == 200  # the local model serves
    serving = health.json()["serving"]
    assert serving["served"]["source"] == "local"
    assert serving["served"]["champion"]["model_version"].endswith("-a")
    assert serving["agrees_with_registry"] is False
    [refusal] = serving["refusals"]
    assert (refusal["alias"], refusal["registry_version"], refusal["reason"], refusal["run_id"]) == (
        "champion", gone.number, "unloadable", gone.run_id)
    assert refusal["detail"].startswith("its artifacts could not be downloaded")
    assert _predict_version(api).endswith("-a")
    metrics = httpx.get(f"{api}/metrics", timeout=10).text
    assert (_sample(metrics, "churn_model_admission_refusals_total", alias="champion",
                    version=str(gone.number), reason="unloadable") or 0) >= 1
    _wait_for(lambda: len(teams.received) >= 1, "the Teams card of the refusal")
    time.sleep(2)  # retried at every poll (the store may come back), alerted once
    assert len(teams.received) == 1
    card = teams.received[0]["attachments"][0]["content"]
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert (facts["Alias"], facts["Reason"]) == ("champion", "unloadable")


def test_a_version_whose_artifacts_were_deleted_is_refused_on_follow_as_challenger_and_by_the_cli(
    versions: dict[str, Path], registry_settings: RegistrySettings, start_api: Callable[..., str],
) -> None:
    good = log_training_run(versions["a"], alias=CHAMPION, settings=registry_settings)
    challenger = log_training_run(versions["b"], alias=None, settings=registry_settings)
    champion_to_be = log_training_run(versions["c"], alias=None, settings=registry_settings)
    assert good is not None and challenger is not None and champion_to_be is not None
    api = start_api(registry_settings)
    assert _serving(api)["served"]["champion"]["run_id"] == good.run_id

    # as challenger: the artifacts deleted before the alias reaches it; never shadowed
    delete_run_artifacts(challenger.run_id, registry_settings)
    set_alias(CHALLENGER, challenger.number, registry_settings)
    _wait_for(lambda: _unloadable(api, "challenger") is not None, "the challenger refused as unloadable")
    assert httpx.get(f"{api}/model", timeout=10).json()["challenger"] is None
    assert _serving(api)["served"]["challenger"] is None

    # the CLI refuses to make a version champion whose artifacts are gone, saying why
    delete_run_artifacts(champion_to_be.run_id, registry_settings)
    done = run_lifecycle_cli(
        registry_settings, "promote", "--version", str(champion_to_be.number), "--by", "test",
    )
    assert done.returncode != 0, done.stdout
    assert f"version {champion_to_be.number} cannot be served (unloadable: its artifacts could not be " \
           "downloaded" in done.stderr
    assert "the champion alias was not moved" in done.stderr
    assert version_by_alias(CHAMPION, registry_settings).number == good.number  # type: ignore[union-attr]

    # on follow: the alias moved past the CLI (by hand in MLflow); the current champion keeps serving
    set_alias(CHAMPION, champion_to_be.number, registry_settings)
    _wait_for(lambda: _unloadable(api, "champion") is not None, "the champion refused as unloadable")
    serving = _serving(api)
    assert serving["served"]["champion"]["run_id"] == good.run_id
    assert serving["registry"]["champion"]["registry_version"] == champion_to_be.number
    assert serving["agrees_with_registry"] is False
    assert _unloadable(api, "champion")["registry_version"] == champion_to_be.number  # type: ignore[index]
    assert _predict_version(api) == good.model_version
    assert httpx.get(f"{api}/health/ready", timeout=10).status_code == 200  # the served one scores
    metrics = httpx.get(f"{api}/metrics", timeout=10).text
    assert _sample(metrics, "churn_model_registry_agreement") == 0
    assert (_sample(metrics, "churn_model_admission_refusals_total", alias="champion",
                    version=str(champion_to_be.number), reason="unloadable") or 0) >= 1
