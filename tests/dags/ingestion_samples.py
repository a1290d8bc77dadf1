"""Writers of sample raw files for the ingestion tests (their rows: tests/factories.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def write_csv(frame: pd.DataFrame, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    frame.to_csv(path, index=False)
    return path


def count_data_rows(path: Path) -> int:
    return len(pd.read_csv(path, dtype=str))
