"""File IO every service shares: one atomic writer, one lister of visible files, one text decoder.

The data folders are watched by other processes (the ingestion DAG polls raw-data, the prediction
DAG polls good_data), so a file must appear whole or not at all, and a file still being written
must be invisible: writes go to a hidden temporary name in the destination folder (the same
filesystem, so the final rename is atomic) and every listing skips hidden names.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from core.error_types import ErrorType

TEMPORARY_SUFFIX = ".tmp"


class UnreadableFileError(ValueError):
    """A file that cannot be read as customer rows.

    `error_type` is ErrorType.EMPTY_FILE or ErrorType.UNREADABLE_FILE; `detail` says why in the
    user's terms ("not UTF-8 text (byte 12)"), without the file name, which the caller knows.
    """

    def __init__(self, error_type: ErrorType, detail: str) -> None:
        super().__init__(detail)
        self.error_type = error_type
        self.detail = detail


def temporary_name(target: Path) -> Path:
    """The hidden name a write of `target` is staged under: `.<name>.<unique>.tmp`, same folder."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}{TEMPORARY_SUFFIX}")


def write_atomic(contents: Mapping[Path, bytes]) -> None:
    """Write every file whole and durably, or none of them.

    Each file is written under a hidden temporary name in its destination folder and flushed to
    disk (fsync); only when all are staged are they renamed into place (`os.replace`, atomic on
    one filesystem), then each folder is synced so the renames survive a power cut. A reader
    polling the folders never sees a partial file. On any failure before the renames, every
    temporary is removed, no target appears, and the error is raised. Folders are created.

    Args:
        contents: target path -> the bytes it must hold (one entry for a single file).
    Raises:
        OSError: the disk or folder refused a write; nothing of this call is left behind.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for target, data in contents.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = temporary_name(target)
            staged.append((temporary, target))
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        for temporary, target in staged:
            os.replace(temporary, target)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
    for folder in {target.parent for _, target in staged}:
        _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot open a folder for fsync
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def list_visible_files(folder: Path) -> list[Path]:
    """The regular files directly in `folder` whose names do not start with a dot, sorted by name.

    Every name counts, not only `*.csv` (a customer's `export.CSV` or `customers.txt` is data too);
    hidden names are writes in progress (see write_atomic) or the claims folder. A missing folder
    has no files.
    """
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())


def remove_orphan_temporaries(folder: Path, *, older_than_seconds: float, now: float) -> list[Path]:
    """Delete write_atomic's temporaries left in `folder` by a killed writer; returns them.

    Only hidden `*.tmp` files last modified more than `older_than_seconds` before `now` (epoch
    seconds) go: a write still in progress is younger than that.
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        if path.name.startswith(".") and path.name.endswith(TEMPORARY_SUFFIX) and path.is_file():
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > older_than_seconds:
                    path.unlink()
                    removed.append(path)
    return sorted(removed)


def decode_text(data: bytes) -> str:
    """Bytes of a text file as str: UTF-8, with or without the BOM spreadsheet exports write.

    Raises:
        UnreadableFileError: no bytes or only white space (EMPTY_FILE); a NUL byte anywhere,
            which text never holds (UNREADABLE_FILE, "binary content"); bytes that are not UTF-8
            (UNREADABLE_FILE, naming the first bad byte's offset).
    """
    if not data.strip():
        raise UnreadableFileError(ErrorType.EMPTY_FILE, "the file has no bytes")
    if b"\x00" in data:
        raise UnreadableFileError(ErrorType.UNREADABLE_FILE, "binary content (NUL bytes), not a CSV")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(
            ErrorType.UNREADABLE_FILE, f"not UTF-8 text (byte {exc.start}): wrong encoding"
        ) from exc
