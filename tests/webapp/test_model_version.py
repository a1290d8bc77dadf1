"""The webapp names the model version that answered each prediction, and its caption names the
version answering now, never one the API replaced (real MLflow registry, real API, AppTest)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.settings import RegistrySettings
from model.registry import CHAMPION, log_training_run, set_alias
from model.train import train
from tests.api_server import start_api_server
from tests.lifecycle.broken_versions import forget_served_versions, with_version_suffix
from tests.mlflow_server import mlflow_url, registry_settings  # noqa: F401  (fixtures)
from tests.webapp.conftest import APP_FILE
from webapp.results import answered_by, prediction_frame

RUN_TIMEOUT = 60


def test_answered_by_names_the_version_or_each_version_with_its_count() -> None:
    assert answered_by([]) is None
    assert answered_by([{"model_version": "v1"}, {"model_version": "v1"}]) == "Answered by model `v1`."
    assert answered_by([{"model_version": "v1"}] * 3 + [{"model_version": "v2"}]) == (
        "Answered by models `v1` (3 customers) and `v2` (1 customers).")
    frame = prediction_frame([{"label": 0, "churn_probability": 0.1, "customer_id": None,
                               "model_version": "v2"}])
    assert frame.loc[0, "model_version"] == "v2"


@pytest.fixture
def registry_api(
    registry_settings: RegistrySettings, clean_db: str, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, list[str], list[int]]]:
    """The real API following a registry with two versions, the first champion; the webapp on it."""
    trained = tmp_path_factory.mktemp("trained")
    train(out_dir=trained)
    numbers, names = [], []
    for suffix in ("-one", "-two"):
        version = log_training_run(with_version_suffix(trained, tmp_path_factory.mktemp(suffix), suffix),
                                   alias=CHAMPION if suffix == "-one" else None, settings=registry_settings)
        assert version is not None
        numbers.append(version.number)
        names.append(version.model_version)
    base_url, stop = start_api_server(clean_db, env={
        "API_TOKEN": "", "MLFLOW_TRACKING_URI": registry_settings.mlflow_tracking_uri or "",
        "MLFLOW_MODEL_NAME": registry_settings.mlflow_model_name,
        "MODEL_STARTUP_WAIT_SECONDS": "50", "MODEL_POLL_SECONDS": "0.5"})
    monkeypatch.setenv("API_URL", base_url)
    monkeypatch.delenv("API_TOKEN", raising=False)
    st.cache_data.clear()
    yield base_url, names, numbers
    stop()
    forget_served_versions()


def _wait_until_serving(api: str, version: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{api}/model", timeout=10).json()["model_version"] != version:
        assert time.monotonic() < deadline, f"the API did not serve {version} within {timeout:.0f} s"
        time.sleep(0.3)


def _captions(at: AppTest) -> list[str]:
    return [caption.value for caption in at.caption]


def test_the_caption_follows_a_promotion_and_each_answer_names_its_version(
    registry_api: tuple[str, list[str], list[int]], registry_settings: RegistrySettings,  # noqa: F811
) -> None:
    api, (first, second), (_, second_number) = registry_api
    _wait_until_serving(api, first)
    at = AppTest.from_file(APP_FILE, default_timeout=RUN_TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    assert any(f"Model `{first}` answers now" in c for c in _captions(at))
    at.button(key="FormSubmitter:single_customer-Predict").click().run()
    assert f"Answered by model `{first}`." in _captions(at)
    assert at.dataframe[0].value.loc[0, "model_version"] == first

    set_alias(CHAMPION, second_number, registry_settings)
    _wait_until_serving(api, second)

    at.run()  # the model description is cached for minutes; the caption is not
    assert any(f"Model `{second}` answers now" in c for c in _captions(at))
    assert not any(f"Model `{first}`" in c for c in _captions(at))
    assert f"Answered by model `{first}`." in _captions(at)  # the earlier answer keeps its version
    at.button(key="FormSubmitter:single_customer-Predict").click().run()
    assert f"Answered by model `{second}`." in _captions(at)
