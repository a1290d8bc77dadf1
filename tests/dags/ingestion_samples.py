"""Sample raw files for the ingestion tests: clean rows from the committed dataset, and writers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from model.contract import TARGET
from model.data import DATASET_PATH


def clean_frame(rows: int = 40, start: int = 0) -> pd.DataFrame:
    """`rows` clean records as text cells, the way a raw file holds them (no label column)."""
    frame = pd.read_csv(DATASET_PATH, dtype=str, nrows=start + rows).iloc[start:]
    return frame.drop(columns=[TARGET]).reset_index(drop=True)


def write_csv(frame: pd.DataFrame, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    frame.to_csv(path, index=False)
    return path


def count_data_rows(path: Path) -> int:
    return len(pd.read_csv(path, dtype=str))
