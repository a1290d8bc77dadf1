"""Outcomes coming back, for the demo: label files for customers already predicted.

    python -m scripts.seed_labels            write one label file now (if any outcome is due)
    python -m scripts.seed_labels --every    keep doing it every LABEL_SEED_EVERY_SECONDS

In production the outcomes (did the customer leave?) come from billing or CRM systems. Here they
come from the dataset itself: a customer of the dataset predicted at time P gets its own `churn`
value, known at P + LABEL_DELAY_SECONDS, written once that moment has passed. Customers the
dataset does not know (ids typed in the webapp) get no label; a customer already labelled, or
waiting in a label file not yet ingested, is not written again. `make run` runs the `--every`
form as the `seed-labels` service (LauncherSettings.seed_labels); the label_ingestion DAG
ingests the files.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from core.files import list_visible_files, write_atomic
from core.settings import LabelSeedSettings
from model.contract import IDENTIFIER, TARGET
from model.data import DATASET_PATH

LABEL_FILE_COLUMNS = [IDENTIFIER, "churn", "known_at"]


def write_label_file(labels: pd.DataFrame, labels_dir: Path, prefix: str = "labels") -> Path:
    """Write `labels` (customer_id, churn Yes/No, known_at as datetimes) as one label file.

    The name carries the UTC time to the microsecond, so files never overwrite each other; the
    write is atomic (core/files.py), so the DAG never reads half a file. Returns its path.
    """
    # to the microsecond: a label known "at 12:00:00" would not judge a prediction of 12:00:00.4
    frame = labels.assign(known_at=pd.to_datetime(labels["known_at"], utc=True).map(
        lambda t: t.isoformat(timespec="microseconds")))[LABEL_FILE_COLUMNS]
    path = labels_dir / f"{prefix}_{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.csv"
    write_atomic({path: frame.to_csv(index=False).encode()})
    return path


def dataset_outcomes(path: Path = DATASET_PATH) -> pd.Series:
    """The dataset's own label per customer id ("Yes"/"No")."""
    frame = pd.read_csv(path, usecols=[IDENTIFIER, TARGET], dtype=str)
    return frame.set_index(IDENTIFIER)[TARGET]


def pending_customers(labels_dir: Path) -> set[str]:
    """Customers named by label files still waiting in the folder (written, not yet ingested)."""
    waiting: set[str] = set()
    for path in list_visible_files(labels_dir):
        try:
            waiting |= set(pd.read_csv(path, usecols=[IDENTIFIER], dtype=str)[IDENTIFIER].dropna())
        except (ValueError, pd.errors.ParserError):
            continue  # not ours to judge: the DAG sets a bad file aside with its reason
    return waiting


def seed_due_labels(settings: LabelSeedSettings | None = None, now: datetime | None = None) -> Path | None:
    """One label file for every outcome due by `now`; None when there is none. See the module doc."""
    from db.labels import customers_awaiting_label
    from db.session import session_scope

    settings = settings or LabelSeedSettings()
    now = now or datetime.now(UTC)
    delay = timedelta(seconds=settings.label_delay_seconds)
    with session_scope() as session:
        due = customers_awaiting_label(session=session, predicted_before=now - delay)
    outcomes = dataset_outcomes()
    waiting = pending_customers(settings.labels_dir)
    rows = [(customer, outcomes[customer], predicted_at + delay) for customer, predicted_at in due
            if customer in outcomes.index and customer not in waiting]
    if not rows:
        return None
    return write_label_file(pd.DataFrame(rows, columns=LABEL_FILE_COLUMNS), settings.labels_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write label files for customers already predicted.")
    parser.add_argument("--every", action="store_true",
                        help="keep writing them every LABEL_SEED_EVERY_SECONDS (make run's service)")
    args = parser.parse_args(argv)
    settings = LabelSeedSettings()
    while True:
        written = seed_due_labels(settings)
        if written is not None:
            print(f"labels: wrote {written} ({sum(1 for _ in written.open()) - 1} outcomes)", flush=True)
        elif not args.every:
            print("labels: no outcome due yet", flush=True)
        if not args.every:
            return
        time.sleep(settings.label_seed_every_seconds)


if __name__ == "__main__":
    main()
