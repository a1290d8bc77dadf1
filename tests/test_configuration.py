"""Every setting of every service is listed in .env.example, so a user can see and change it."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest
from pydantic_settings import BaseSettings

from core.settings import REPO_ROOT

SOURCE_FOLDERS = ("core", "api", "webapp", "db", "dags", "launcher", "scripts", "model", "bench")


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class of the stack: all of them live in core/settings.py."""
    module = importlib.import_module("core.settings")
    return [
        cls for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseSettings) and cls.__module__ == "core.settings" and cls.model_fields
    ]


def test_settings_classes_live_only_in_core_settings() -> None:
    """No service declares settings of its own: a variable has one home (core/settings.py)."""
    defining = {
        str(path.relative_to(REPO_ROOT))
        for folder in SOURCE_FOLDERS
        for path in (REPO_ROOT / folder).rglob("*.py")
        if re.search(r"^\s*class \w+\([^)]*BaseSettings[^)]*\)", path.read_text(), re.M)
    }
    assert defining == {"core/settings.py"}


def test_every_variable_is_declared_in_exactly_one_class() -> None:
    """A variable inherited by a combining class (IngestionSettings...) is still declared once."""
    declared: dict[str, list[str]] = {}
    for cls in settings_classes():
        for name in cls.__annotations__:
            if name in cls.model_fields:
                declared.setdefault(name, []).append(cls.__name__)
    twice = {name: owners for name, owners in declared.items() if len(owners) > 1}
    assert not twice, f"declared more than once: {twice}"


@pytest.mark.parametrize("cls", settings_classes(), ids=lambda c: c.__name__)
def test_every_variable_is_in_env_example(cls: type[BaseSettings]) -> None:
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    prefix = cls.model_config.get("env_prefix", "")
    expected = {(prefix + field).upper() for field in cls.model_fields}
    assert expected <= listed, f"{cls.__name__}: add {sorted(expected - listed)} to .env.example"
