"""The three runtime data folders: where raw files land and where ingestion sorts them.

Shared by the data-preparation scripts and the DAGs, so that every part agrees on the same
folders (RAW_DATA_DIR, GOOD_DATA_DIR, BAD_DATA_DIR; defaults relative to the repository root).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class DataFolders(BaseSettings):
    """Raw files arrive in `raw_data_dir`; ingestion moves their rows to good or bad data."""

    model_config = SettingsConfigDict(env_file=REPO_ROOT / ".env", extra="ignore")

    raw_data_dir: Path = REPO_ROOT / "raw-data"
    good_data_dir: Path = REPO_ROOT / "good_data"
    bad_data_dir: Path = REPO_ROOT / "bad_data"

    def all(self) -> tuple[Path, Path, Path]:
        """Every folder a data file name must be unique across."""
        return (self.raw_data_dir, self.good_data_dir, self.bad_data_dir)


def write_files_atomically(contents: Mapping[Path, bytes]) -> None:
    """Write every file under a hidden temporary name first, then rename them into place.

    A reader polling the folder (the ingestion DAG) only ever sees complete files, and when a
    write fails none of the files appears: the temporaries are removed and the error is raised.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for target, data in contents.items():
            temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            staged.append((temporary, target))
            temporary.write_bytes(data)
    except BaseException:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise
    for temporary, target in staged:
        os.replace(temporary, target)
