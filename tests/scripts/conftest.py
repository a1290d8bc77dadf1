"""Fixtures for the data-preparation scripts: throwaway data folders and small datasets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.settings import DataFolderSettings
from model.data import DATASET_PATH, load_dataset


@pytest.fixture(scope="session")
def dataset() -> pd.DataFrame:
    return load_dataset()


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DataFolderSettings:
    """Raw, good and bad data folders under tmp_path, also exported for the scripts' settings."""
    paths = {name: tmp_path / folder for name, folder in (
        ("RAW_DATA_DIR", "raw-data"), ("GOOD_DATA_DIR", "good_data"), ("BAD_DATA_DIR", "bad_data"),
    )}
    for name, path in paths.items():
        path.mkdir()
        monkeypatch.setenv(name, str(path))
    return DataFolderSettings()


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """The first 5 customers of the dataset, with its exact text, as a CSV of its own."""
    path = tmp_path / "small.csv"
    lines = DATASET_PATH.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:6]))
    return path

