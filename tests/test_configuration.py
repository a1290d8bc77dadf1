"""Every setting of every service is listed in .env.example, so a user can see and change it."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTINGS_MODULES = (
    "api.settings", "webapp.settings", "db.settings", "dags.churn_jobs.settings",
    "dags.churn_jobs.prediction", "scripts.folders", "scripts.airflow_env", "scripts.serve",
    "scripts.run_local", "scripts.seed_demo_history",
)


def settings_classes() -> list[type[BaseSettings]]:
    found = []
    for name in SETTINGS_MODULES:
        module = importlib.import_module(name)
        found += [
            cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseSettings) and cls.__module__ == name
        ]
    return found


def test_every_settings_module_is_checked() -> None:
    """A new settings class anywhere in the services must be added to SETTINGS_MODULES."""
    defining = {
        ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        for folder in ("api", "webapp", "db", "dags", "scripts", "model")
        for path in (REPO_ROOT / folder).rglob("*.py")
        if re.search(r"class \w+\((\w+\.)?BaseSettings\)", path.read_text())
    }
    assert defining <= set(SETTINGS_MODULES)


@pytest.mark.parametrize("cls", settings_classes(), ids=lambda c: c.__name__)
def test_every_variable_is_in_env_example(cls: type[BaseSettings]) -> None:
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    prefix = cls.model_config.get("env_prefix", "")
    expected = {(prefix + field).upper() for field in cls.model_fields}
    assert expected <= listed, f"{cls.__name__}: add {sorted(expected - listed)} to .env.example"
