"""Claiming one raw file per run, so that no two runs ingest the same file.

Only a file left alone for RAW_FILE_SETTLE_SECONDS (its size and modification time unchanged) is
claimed, so a file still being copied in is never read half-written. A claim is an atomic rename
of `raw-data/<name>` into `raw-data/.claims/<ms>__<run>__<name>`: of two runs that race for a
file, exactly one rename succeeds. The claim time is in the name
(a rename keeps the file's old modification time). A run that crashes leaves its claim behind;
any later run moves claims older than the timeout back to raw-data, where they are picked again.
Outputs are named after the original file and its checksum and replaced whole, so a file
ingested again after a crash overwrites its own outputs instead of duplicating them.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

from core.files import list_visible_files

log = logging.getLogger(__name__)

_SEPARATOR = "__"
# No underscore in the run part: Airflow's run ids ("scheduled__...") hold the separator, which
# would shift the split and give a recovered file a wrong name.
_UNSAFE_IN_RUN_ID = re.compile(r"[^A-Za-z0-9.-]+")


@dataclass(frozen=True)
class ClaimedFile:
    """A raw file this run owns: where it is now and the name it arrived with."""

    path: Path
    original_name: str

    def to_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "original_name": self.original_name}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> ClaimedFile:
        return cls(path=Path(data["path"]), original_name=data["original_name"])


def waiting_raw_files(
    raw_data_dir: Path, *, settle_seconds: float = 0.0, now: float | None = None,
) -> list[Path]:
    """Files waiting in raw-data and complete enough to claim; hidden names are writers' temporaries.

    A file counts only once it has been left alone for `settle_seconds`: its modification time
    (which every write, hence every change of size, moves) is at least that old. A file still
    being copied in keeps a fresh modification time and waits for a later run; a file written
    elsewhere and then moved or renamed in whole keeps its modification time and is claimed at
    once. `now` is the epoch time to compare with (the current time when None).
    """
    now = time.time() if now is None else now
    waiting = []
    for path in list_visible_files(raw_data_dir):
        try:
            if now - path.stat().st_mtime >= settle_seconds:
                waiting.append(path)
        except FileNotFoundError:  # claimed by another run meanwhile
            continue
    return waiting


def claim_raw_file(
    raw_data_dir: Path, claims_dir: Path, run_id: str, *, rng: random.Random | None = None,
    settle_seconds: float = 0.0,
) -> ClaimedFile | None:
    """Claim one settled waiting file at random (see waiting_raw_files); None when there is none."""
    rng = rng or random.Random()
    candidates = waiting_raw_files(raw_data_dir, settle_seconds=settle_seconds)
    claims_dir.mkdir(parents=True, exist_ok=True)
    rng.shuffle(candidates)
    for candidate in candidates:
        claimed = claims_dir / _claim_name(candidate.name, run_id)
        try:
            os.rename(candidate, claimed)
        except FileNotFoundError:  # another run claimed it first: try the next one
            continue
        log.info("claimed %s as %s", candidate.name, claimed.name)
        return ClaimedFile(path=claimed, original_name=candidate.name)
    return None


def recover_stale_claims(
    raw_data_dir: Path, claims_dir: Path, timeout_seconds: float, *, now: float | None = None,
) -> list[Path]:
    """Move claims older than the timeout (left by crashed runs) back to raw-data; returns them."""
    if not claims_dir.is_dir():
        return []
    now = time.time() if now is None else now
    recovered = []
    for claim in sorted(claims_dir.iterdir()):
        claimed_at, original_name = _parse_claim_name(claim.name)
        if claimed_at is None or now - claimed_at < timeout_seconds:
            continue
        target = _free_name(raw_data_dir, original_name)
        try:
            os.rename(claim, target)
        except FileNotFoundError:  # its run finished, or another run recovered it meanwhile
            continue
        for step in CLAIM_STEPS:  # what the crashed run did is done again by the next one
            _marker(claim, step).unlink(missing_ok=True)
        log.warning("recovered stale claim %s back to %s", claim.name, target.name)
        recovered.append(target)
    return recovered


CLAIM_STEPS = ("statistics", "split")
"""What must be done before a claimed file is released: its statistics stored, its rows split."""


def release_claim(claimed: ClaimedFile) -> None:
    """Forget a claim whose outputs are written whole; a second call is harmless (task retries)."""
    claimed.path.unlink(missing_ok=True)
    for step in CLAIM_STEPS:
        _marker(claimed.path, step).unlink(missing_ok=True)


def finish_claim_step(claimed: ClaimedFile, step: str) -> bool:
    """Record that `step` (one of CLAIM_STEPS) is done for this claim; release the claim once
    every step is. Returns whether the claim was released.

    The statistics and the split run in parallel: each records itself (a hidden marker beside
    the claim) before looking for the other, so whichever finishes last releases the file. Until
    both are done the file stays claimed, and a run that failed halfway (the database down while
    the statistics are stored) leaves it to be recovered and ingested again after
    CLAIM_TIMEOUT_SECONDS: its statistics row is written once (an upsert on name and checksum),
    its outputs replaced by the same bytes.
    """
    if not claimed.path.exists():  # released already (a retried task), or recovered by a later run
        return False
    _marker(claimed.path, step).touch()
    if all(_marker(claimed.path, s).exists() for s in CLAIM_STEPS):
        release_claim(claimed)
        return True
    return False


def _marker(claim: Path, step: str) -> Path:
    return claim.with_name(f".{claim.name}.{step}.done")


def _claim_name(original_name: str, run_id: str) -> str:
    millis = int(time.time() * 1000)
    return _SEPARATOR.join((str(millis), _UNSAFE_IN_RUN_ID.sub("-", run_id), original_name))


def _parse_claim_name(name: str) -> tuple[float | None, str]:
    parts = name.split(_SEPARATOR, 2)
    if len(parts) != 3 or not parts[0].isdigit():
        return None, name
    return int(parts[0]) / 1000, parts[2]


def _free_name(folder: Path, name: str) -> Path:
    """`name` in `folder`, or `name` with a counter when a file of that name arrived meanwhile."""
    target = folder / name
    counter = 1
    while target.exists():
        target = folder / f"{Path(name).stem}.recovered-{counter}{Path(name).suffix}"
        counter += 1
    return target
