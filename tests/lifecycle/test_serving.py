"""Serving follows the registry: the real API (uvicorn) loads the champion, scores in shadow with
the challenger, and switches to a promoted version under concurrent load without a failed request."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from api.serving import build_served, score_in_shadow
from core.settings import RegistrySettings
from db import session as db_session
from jobs.lifecycle import promote
from model.predictor import Predictor
from model.registry import CHALLENGER, CHAMPION, log_training_run
from model.train import METADATA_FILE, train
from tests.api_server import start_api_server
from tests.factories import customer_record, customer_records

THREADS = 6
POLL_SECONDS = "0.5"


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two artifact folders of distinct versions (the second: same pipeline, its own version)."""
    first = tmp_path_factory.mktemp("first")
    train(out_dir=first)
    second = tmp_path_factory.mktemp("second")
    shutil.copytree(first, second, dirs_exist_ok=True)
    metadata = json.loads((second / METADATA_FILE).read_text())
    metadata["model_version"] += "-b"
    (second / METADATA_FILE).write_text(json.dumps(metadata))
    return first, second


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def _served(api: str) -> dict[str, Any]:
    return httpx.get(f"{api}/model", timeout=10).json()


def _stored_versions(ids: list[int]) -> dict[int, str]:
    with db_session.session_scope() as session:
        rows = session.execute(text("SELECT id, model_version FROM predictions WHERE id = ANY(:ids)"),
                               {"ids": ids})
        return {row.id: row.model_version for row in rows}


def test_the_api_loads_the_champion_and_scores_the_challenger_in_shadow(
    two_models: tuple[Path, Path], registry_settings: RegistrySettings,
    clean_db: str,
) -> None:
    first, second = two_models
    champion = log_training_run(first, alias=CHAMPION, settings=registry_settings)
    assert champion is not None
    base_url, stop = start_api_server(clean_db, env={
        "MLFLOW_TRACKING_URI": registry_settings.mlflow_tracking_uri or "",
        "MLFLOW_MODEL_NAME": registry_settings.mlflow_model_name,
        "MODEL_STARTUP_WAIT_SECONDS": "50", "MODEL_POLL_SECONDS": POLL_SECONDS,
    })
    try:
        served = _served(base_url)
        assert served["champion"] == {"registry_version": champion.number,
                                      "model_version": champion.model_version}
        assert served["challenger"] is None
        challenger = log_training_run(second, alias=CHALLENGER, settings=registry_settings)
        assert challenger is not None
        _wait_for(lambda: _served(base_url)["challenger"] is not None, "the challenger is served")
        assert _served(base_url)["challenger"] == {"registry_version": challenger.number,
                                                   "model_version": challenger.model_version}

        answer = httpx.post(f"{base_url}/predict", json={
            "source": "webapp", "records": customer_records(3, id_prefix="S")}, timeout=30).json()
        ids = [p["id"] for p in answer["predictions"]]
        assert answer["model_version"] == champion.model_version  # the challenger never answers

        def shadow_rows() -> list[Any]:
            with db_session.session_scope() as session:
                return list(session.execute(text(
                    "SELECT prediction_id, model_version, predicted_label, churn_probability "
                    "FROM shadow_predictions WHERE prediction_id = ANY(:ids) ORDER BY prediction_id"),
                    {"ids": ids}))

        _wait_for(lambda: len(shadow_rows()) == 3, "three shadow predictions stored")
        rows = shadow_rows()
        assert [r.prediction_id for r in rows] == sorted(ids)
        assert {r.model_version for r in rows} == {challenger.model_version}
        # same pipeline: the challenger's scores equal the champion's answers, stored apart
        by_id = {p["id"]: p for p in answer["predictions"]}
        assert all(abs(r.churn_probability - by_id[r.prediction_id]["churn_probability"]) < 1e-12
                   for r in rows)
        with db_session.session_scope() as session:  # never counted as predictions
            assert session.scalar(text("SELECT count(*) FROM predictions")) == 3
    finally:
        stop()


def test_a_promotion_under_concurrent_load_fails_no_request_and_switches_versions(
    two_models: tuple[Path, Path], registry_settings: RegistrySettings, clean_db: str,
) -> None:
    first, second = two_models
    old = log_training_run(first, alias=CHAMPION, settings=registry_settings)
    new = log_training_run(second, alias=None, settings=registry_settings)
    assert old is not None and new is not None
    base_url, stop = start_api_server(clean_db, env={
        "MLFLOW_TRACKING_URI": registry_settings.mlflow_tracking_uri or "",
        "MLFLOW_MODEL_NAME": registry_settings.mlflow_model_name,
        "MODEL_STARTUP_WAIT_SECONDS": "50", "MODEL_POLL_SECONDS": POLL_SECONDS,
    })
    results: list[list[tuple[int, str, list[int]]]] = [[] for _ in range(THREADS)]
    failures: list[str] = []
    done = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            i = 0
            while not done.is_set():
                records = customer_records(1 + i % 4, id_prefix=f"L{n}-{i}-")
                try:
                    response = http.post("/predict", json={"source": "webapp", "records": records})
                except httpx.HTTPError as error:  # a lost request
                    failures.append(f"thread {n} request {i}: {error!r}")
                    i += 1
                    continue
                if response.status_code != 200:
                    failures.append(f"thread {n} request {i}: {response.status_code} {response.text[:200]}")
                else:
                    body = response.json()
                    results[n].append((i, body["model_version"], [p["id"] for p in body["predictions"]]))
                i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
    try:
        assert _served(base_url)["champion"]["registry_version"] == old.number
        for thread in threads:
            thread.start()
        time.sleep(3)  # load on the old champion
        promote(new.number, by="test", reason="hot switch under load", registry=registry_settings,
                override_reason="the test switches versions under load, no outcomes to judge")
        _wait_for(lambda: _served(base_url)["champion"]["registry_version"] == new.number,
                  "the API serves the promoted version")
        time.sleep(3)  # load on the new champion
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=60)
        stop()

    assert not failures, failures[:5]
    answered = [r for thread in results for r in thread]
    assert len(answered) > 40
    print(f"\n{len(answered)} requests from {THREADS} threads during the promotion, 0 failed; "
          f"{sum(v == new.model_version for _, v, _ in answered)} answered by the promoted version")
    versions = {old.model_version, new.model_version}
    stored = _stored_versions([id_ for _, _, ids in answered for id_ in ids])
    assert len(stored) == sum(len(ids) for _, _, ids in answered)  # every answered row is stored
    for _, version, ids in answered:
        assert version in versions
        assert {stored[id_] for id_ in ids} == {version}  # stored under the version that answered
    for answers in results:  # each client saw the old version, then only the new one
        seen = [version for _, version, _ in answers]
        switch = seen.index(new.model_version)
        assert switch > 0 and set(seen[:switch]) == {old.model_version}
        assert set(seen[switch:]) == {new.model_version}


def test_a_failing_challenger_never_fails_the_request_it_shadows(
    two_models: tuple[Path, Path], clean_db: str, caplog: pytest.LogCaptureFixture,
) -> None:
    first, _ = two_models
    predictor = Predictor(first)
    models = build_served(predictor, challenger=predictor)
    # prediction 999999 does not exist: the database refuses the shadow row
    assert score_in_shadow(models, [999_999], [customer_record()]) == 0
    assert "could not score 1 records in shadow" in caplog.text
    with db_session.session_scope() as session:
        assert session.scalar(text("SELECT count(*) FROM shadow_predictions")) == 0
