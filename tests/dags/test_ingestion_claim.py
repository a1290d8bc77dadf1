"""Claiming raw files: one run per file, nothing lost when a run crashes."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

from core.settings import IngestionSettings
from jobs.claim import (
    ClaimedFile,
    claim_raw_file,
    recover_stale_claims,
    release_claim,
    waiting_raw_files,
)


def _folders(tmp_path: Path) -> IngestionSettings:
    settings = IngestionSettings(raw_data_dir=tmp_path / "raw-data")
    settings.raw_data_dir.mkdir()
    return settings


def test_an_empty_folder_gives_no_claim_and_hidden_files_are_never_picked(tmp_path: Path) -> None:
    settings = _folders(tmp_path)
    (settings.raw_data_dir / ".gitkeep").write_text("")
    (settings.raw_data_dir / ".part-00.csv.tmp").write_text("a,b\n")  # a writer's temporary
    assert claim_raw_file(settings.raw_data_dir, settings.claims_dir, "run-1") is None


def test_a_claim_moves_the_file_out_of_the_waiting_list(tmp_path: Path) -> None:
    settings = _folders(tmp_path)
    (settings.raw_data_dir / "customers_001.csv").write_text("x\n1\n")
    claimed = claim_raw_file(settings.raw_data_dir, settings.claims_dir, "manual__2026-11-24T09:00:00+00:00")
    assert claimed is not None
    assert claimed.original_name == "customers_001.csv"
    assert claimed.path.parent == settings.claims_dir
    assert claimed.path.name.endswith("__customers_001.csv")
    assert claimed.path.read_text() == "x\n1\n"
    assert waiting_raw_files(settings.raw_data_dir) == []
    assert ClaimedFile.from_dict(claimed.to_dict()) == claimed
    assert claim_raw_file(settings.raw_data_dir, settings.claims_dir, "run-2") is None


def test_racing_runs_claim_each_file_exactly_once(tmp_path: Path) -> None:
    settings = _folders(tmp_path)
    names = {f"file_{i:02d}.csv" for i in range(40)}
    for name in names:
        (settings.raw_data_dir / name).write_text(name)
    claims: list[ClaimedFile] = []
    lock = threading.Lock()

    def run(worker: int) -> None:
        rng = random.Random(worker)
        while (claimed := claim_raw_file(settings.raw_data_dir, settings.claims_dir, f"w{worker}", rng=rng)):
            with lock:
                claims.append(claimed)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(c.original_name for c in claims) == sorted(names)
    assert all(c.path.read_text() == c.original_name for c in claims)


def test_a_claim_left_by_a_crashed_run_goes_back_to_raw_data_after_the_timeout(tmp_path: Path) -> None:
    settings = _folders(tmp_path)
    (settings.raw_data_dir / "crashed.csv").write_text("crashed")
    stale = claim_raw_file(settings.raw_data_dir, settings.claims_dir, "crashed-run")
    assert stale is not None
    after_timeout = time.time() + settings.claim_timeout_seconds + 1
    recovered = recover_stale_claims(
        settings.raw_data_dir, settings.claims_dir, settings.claim_timeout_seconds, now=after_timeout,
    )
    assert recovered == [settings.raw_data_dir / "crashed.csv"]
    assert list(settings.claims_dir.iterdir()) == []
    again = claim_raw_file(settings.raw_data_dir, settings.claims_dir, "next-run")
    assert again is not None and again.path.read_text() == "crashed"


def test_recovery_leaves_claims_younger_than_the_timeout(tmp_path: Path) -> None:
    settings = _folders(tmp_path)
    (settings.raw_data_dir / "a.csv").write_text("a")
    claimed = claim_raw_file(settings.raw_data_dir, settings.claims_dir, "run")
    assert claimed is not None
    assert recover_stale_claims(settings.raw_data_dir, settings.claims_dir, 600) == []
    assert claimed.path.exists()
    release_claim(claimed)
    release_claim(claimed)  # a retried task releases again: harmless
    assert not claimed.path.exists()


def test_a_recovered_file_never_overwrites_a_new_arrival_of_the_same_name(tmp_path: Path) -> None:
    settings = _folders(tmp_path)
    (settings.raw_data_dir / "a.csv").write_text("old")
    claimed = claim_raw_file(settings.raw_data_dir, settings.claims_dir, "run")
    assert claimed is not None
    (settings.raw_data_dir / "a.csv").write_text("new")
    recovered = recover_stale_claims(settings.raw_data_dir, settings.claims_dir, 0)
    assert [p.read_text() for p in recovered] == ["old"]
    assert (settings.raw_data_dir / "a.csv").read_text() == "new"


def test_a_recovered_claim_of_an_airflow_run_keeps_its_original_name(tmp_path: Path) -> None:
    # Airflow's run ids hold the claim name's separator ("scheduled__<time>"); a wrong name would
    # put the re-ingested rows in good_data beside the first output, to be predicted twice
    settings = _folders(tmp_path)
    (settings.raw_data_dir / "customers__001.csv").write_text("rows")
    stale = claim_raw_file(settings.raw_data_dir, settings.claims_dir, "scheduled__2026-11-24T09:00:00+00:00")
    assert stale is not None
    recovered = recover_stale_claims(settings.raw_data_dir, settings.claims_dir, 0)
    assert recovered == [settings.raw_data_dir / "customers__001.csv"]


def test_a_file_still_being_written_is_claimed_only_whole(tmp_path: Path) -> None:
    """A writer appends a row every 0.1 s; runs poll meanwhile: none claims it before it is whole."""
    settings = _folders(tmp_path)
    target = settings.raw_data_dir / "arriving.csv"
    lines = [f"C{i:04d},{i}\n" for i in range(15)]

    def write_slowly() -> None:
        with target.open("w") as handle:
            handle.write("customer_id,tenure\n")
            for line in lines:
                handle.flush()
                time.sleep(0.1)
                handle.write(line)

    writer = threading.Thread(target=write_slowly)
    writer.start()
    claimed = None
    while claimed is None:
        claimed = claim_raw_file(settings.raw_data_dir, settings.claims_dir, "poll", settle_seconds=0.5)
        time.sleep(0.05)
    writer.join()
    assert claimed.path.read_text() == "customer_id,tenure\n" + "".join(lines)


def test_a_file_moved_in_whole_is_claimed_at_once(tmp_path: Path) -> None:
    settings = _folders(tmp_path)
    elsewhere = tmp_path / "export.csv"
    elsewhere.write_text("customer_id\nC1\n")
    written = time.time() - 60
    os.utime(elsewhere, (written, written))  # finished a minute ago, then moved in now
    elsewhere.rename(settings.raw_data_dir / "export.csv")
    assert claim_raw_file(settings.raw_data_dir, settings.claims_dir, "run", settle_seconds=10) is not None


def test_the_settle_time_comes_from_the_settings(tmp_path: Path) -> None:
    from jobs.ingestion import claim_next_file

    settings = IngestionSettings(raw_data_dir=tmp_path / "raw-data", raw_file_settle_seconds=30)
    settings.raw_data_dir.mkdir()
    fresh = settings.raw_data_dir / "fresh.csv"
    fresh.write_text("customer_id\nC1\n")
    assert claim_next_file("run-1", settings) is None  # written just now: maybe not whole yet
    old = time.time() - 31
    os.utime(fresh, (old, old))
    claim = claim_next_file("run-2", settings)
    assert claim is not None and claim["original_name"] == "fresh.csv"
