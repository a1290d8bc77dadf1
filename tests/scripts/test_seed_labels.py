"""make run's label seeding: outcomes of predicted dataset customers, a delay after their prediction,
from the dataset's own label, written once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from core.settings import LabelSeedSettings
from db import predictions as stored_predictions
from db import session as db_session
from jobs.labels import ingest_label_file, parse_known_at
from scripts.seed_labels import dataset_outcomes, seed_due_labels
from tests.factories import dataset_records


def _predict(records: list[dict[str, object]], at: datetime) -> None:
    with db_session.session_scope() as session:
        stored_predictions.create_predictions(
            session=session, source="scheduled", records=records, labels=[0] * len(records),
            probabilities=[0.1] * len(records), model_version="v-seed", created_at=at)


def test_outcomes_are_written_once_a_delay_after_the_prediction_from_the_dataset(
    clean_db: str, tmp_path: Path,
) -> None:
    settings = LabelSeedSettings(labels_dir=tmp_path / "labels", labels_bad_dir=tmp_path / "bad",
                                 label_delay_seconds=300)
    now = datetime.now(UTC)
    early, late = dataset_records(3), dataset_records(2, start=3)
    _predict(early, now - timedelta(minutes=10))
    _predict(late, now - timedelta(minutes=1))  # its outcome is not known yet
    _predict([{**early[0], "customer_id": "typed-in-the-webapp"}], now - timedelta(minutes=10))

    written = seed_due_labels(settings, now=now)
    assert written is not None and written.parent == settings.labels_dir
    rows = pd.read_csv(written, dtype=str)
    assert list(rows.columns) == ["customer_id", "churn", "known_at"]
    truth = dataset_outcomes()
    assert sorted(rows["customer_id"]) == sorted(r["customer_id"] for r in early)  # not "typed-in..."
    assert all(rows["churn"] == truth[rows["customer_id"]].to_numpy())
    known = {parse_known_at(t) for t in rows["known_at"]}
    assert known == {now - timedelta(minutes=10) + timedelta(seconds=300)}

    assert seed_due_labels(settings, now=now) is None  # waiting in the folder: not written twice
    report = ingest_label_file(written, settings=settings, now=now)
    assert report.matched == 3  # each judges its prediction
    assert seed_due_labels(settings, now=now) is None  # stored: not written again
    later = seed_due_labels(settings, now=now + timedelta(minutes=5))
    assert later is not None
    assert sorted(pd.read_csv(later, dtype=str)["customer_id"]) == sorted(r["customer_id"] for r in late)
