"""Write hours of realistic history so that both Grafana dashboards tell a story the first time.

    python -m scripts.seed_demo_history --hours 6      # replaces any earlier demo history
    python -m scripts.seed_demo_history --remove       # deletes exactly what it wrote

Everything goes through the code paths the services use: ingestion statistics through
`db.statistics.record_ingestion_statistics` (the ingestion DAG's writer) and predictions through
`db.predictions.create_predictions` (the API's storage function), scored by the real model on
records sampled from the dataset. One file is ingested a minute; every two minutes the valid rows of the
files ingested since are scored (source `scheduled`), and people score a customer now and then
(source `webapp`). Five incidents, at fixed distances from the end (see `DemoTimeline`):

- empty values: for 20 minutes an export leaves total_charges empty in every row (valid rows, as
  the contract allows an empty total for first-month customers: the model imputes the median);
- bad data: for 15 minutes every file lacks a required column, so all its rows are invalid;
- outage: no file at all for 12 minutes (the ingestion stopped);
- drift: for an hour a promotion brings fiber customers on month-to-month contracts, with days of
  tenure, paying more and by electronic check; PSI jumps and the model predicts churn for all;
- healthy data before, between and after.

Outcomes come back for 98 % of the demo's predictions, so its windows are settled
(scripts/demo_outcomes.py): the newcomers of the drift episode all stay, so the realized F1 of
its windows falls below the training F1.

What it writes is marked: `ingested_files.dag_run_id = 'demo-history'` and batch keys starting
with `demo-history:` (their predictions go with them), which is what `--remove` deletes.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from core.error_types import ErrorType
from core.settings import ReportSettings
from db.predictions import create_predictions, delete_predictions
from db.session import session_scope
from db.statistics import delete_ingestion_statistics, record_ingestion_statistics
from model.contract import FEATURES, FEATURES_BY_NAME, IDENTIFIER, NUMERIC_FEATURES, REQUIRED_COLUMNS
from model.data import load_dataset
from model.predictor import Predictor
from model.reasons import stored_values
from scripts.demo_outcomes import ScoredDemoRecord, write_demo_realized_performance

DEMO_RUN_ID = "demo-history"
DEMO_BATCH_PREFIX = "demo-history:"
PROMOTED_SERVICE = "Fiber optic"  # the drift episode's newcomers all take it
EMPTIED_FEATURE = "total_charges"  # the empty-values episode's export leaves it empty
MIN_HOURS = 4  # the incidents sit in the last ~3.5 hours; some healthy history must come before

ROW_ERRORS = (
    ErrorType.MISSING_VALUE, ErrorType.UNKNOWN_CATEGORY, ErrorType.OUT_OF_RANGE,
    ErrorType.WRONG_TYPE, ErrorType.DUPLICATE_ROW, ErrorType.INCONSISTENT_VALUES,
)


@dataclass(frozen=True)
class DemoTimeline:
    """The demo's time span and its incidents (start inclusive, end exclusive)."""

    start: datetime
    end: datetime
    bad_data: tuple[datetime, datetime]
    outage: tuple[datetime, datetime]
    drift: tuple[datetime, datetime]
    empty_values: tuple[datetime, datetime]

    @classmethod
    def ending_at(cls, end: datetime, hours: float) -> DemoTimeline:
        if hours < MIN_HOURS:
            raise ValueError(f"--hours must be at least {MIN_HOURS} so that the incidents fit, got {hours}")
        end = end.replace(second=0, microsecond=0)

        def before(start_minutes: int, end_minutes: int) -> tuple[datetime, datetime]:
            return end - timedelta(minutes=start_minutes), end - timedelta(minutes=end_minutes)

        return cls(
            start=end - timedelta(hours=hours), end=end,
            bad_data=before(130, 115), outage=before(100, 88), drift=before(75, 15),
            empty_values=before(200, 180),
        )

    def within(self, moment: datetime, episode: tuple[datetime, datetime]) -> bool:
        return episode[0] <= moment < episode[1]

    def minutes(self) -> Iterator[datetime]:
        moment = self.start
        while moment < self.end:
            yield moment
            moment += timedelta(minutes=1)


@dataclass(frozen=True)
class PendingBatch:
    """One request's worth of records, as the API would receive it."""

    records: list[dict[str, Any]]
    source: str
    created_at: datetime
    file_name: str | None
    batch_key: str


@dataclass
class DemoWriter:
    """Writes one demo minute after another; holds the model, the data and what awaits scoring."""

    session: Session
    timeline: DemoTimeline
    predictor: Predictor
    dataset: pd.DataFrame
    reports_base_url: str
    rng: random.Random
    awaiting_scoring: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    batches: list[PendingBatch] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"files": 0, "predictions": 0})
    scored: list[ScoredDemoRecord] = field(default_factory=list)  # for the realized performance

    def write_minute(self, moment: datetime) -> None:
        if not self.timeline.within(moment, self.timeline.outage):
            self.ingest_file(moment)
        if moment.minute % 2 == 0:
            self.score_scheduled(moment)
        if self.rng.random() < 0.3:
            self.score_webapp(moment + timedelta(seconds=self.rng.randint(5, 55)))

    def sample_records(self, count: int, moment: datetime) -> list[dict[str, Any]]:
        drifting = self.timeline.within(moment, self.timeline.drift)
        pool = self.dataset
        if drifting:
            pool = pool[pool["internet_service"] == PROMOTED_SERVICE]
        rows = pool.sample(n=count, random_state=self.rng.randint(0, 2**31 - 1))
        records = [_clean(record) for record in rows.to_dict(orient="records")]
        if self.timeline.within(moment, self.timeline.empty_values):
            records = [{**record, EMPTIED_FEATURE: None} for record in records]
        return [_drifted(record, self.rng) for record in records] if drifting else records

    def ingest_file(self, moment: datetime) -> None:
        name = f"demo_{moment:%Y%m%d_%H%M}.csv"
        records = self.sample_records(self.rng.randint(20, 60), moment)
        if self.timeline.within(moment, self.timeline.bad_data):
            errors: dict[tuple[str, str | None], int] = {
                (ErrorType.MISSING_COLUMN.value, self.rng.choice(REQUIRED_COLUMNS)): len(records),
            }
            invalid = len(records)
        else:
            errors, invalid = _ordinary_errors(len(records), self.rng)
        started = moment + timedelta(seconds=2)
        record_ingestion_statistics(
            session=self.session, file_name=name, dag_run_id=DEMO_RUN_ID, started_at=started,
            rows=len(records), valid_rows=len(records) - invalid, invalid_rows=invalid,
            criticality=_criticality(invalid, len(records), errors), outcome=_outcome(invalid, len(records)),
            report_url=f"{self.reports_base_url}/{name.removesuffix('.csv')}.html",
            alert_sent=True if invalid else None, error_counts=errors,
            ingested_at=started + timedelta(seconds=self.rng.uniform(1.0, 4.0)),
        )
        self.counts["files"] += 1
        if invalid < len(records):
            self.awaiting_scoring.append((name, records[invalid:]))  # the good rows go on

    def score_scheduled(self, moment: datetime) -> None:
        for name, records in self.awaiting_scoring:
            self.store(records, "scheduled", moment + timedelta(seconds=20), name, f"{name}:demo:0")
        self.awaiting_scoring.clear()

    def score_webapp(self, moment: datetime) -> None:
        records = self.sample_records(self.rng.randint(1, 3), moment)
        self.store(records, "webapp", moment, None, f"webapp:{moment:%Y%m%dT%H%M%S}")

    def store(
        self, records: Sequence[dict[str, Any]], source: str, moment: datetime,
        file_name: str | None, key: str,
    ) -> None:
        key = f"{DEMO_BATCH_PREFIX}{key}"
        self.batches.append(PendingBatch(list(records), source, moment, file_name, key))

    def write_predictions(self) -> None:
        """Score every batch in one model call, then store each with its reason codes, as the API does."""
        scores = self.predictor.score([r for batch in self.batches for r in batch.records])
        assert scores.reasons is not None
        labels, probabilities = scores.labels.tolist(), scores.probabilities.tolist()
        reasons = stored_values(scores.reasons)
        start = 0
        for batch in self.batches:
            end = start + len(batch.records)
            create_predictions(
                session=self.session, source=batch.source, records=batch.records,
                labels=labels[start:end], probabilities=probabilities[start:end],
                reasons=reasons[start:end], model_version=self.predictor.version,
                file_name=batch.file_name, batch_key=batch.batch_key, created_at=batch.created_at,
            )
            self.counts["predictions"] += len(batch.records)
            drift = self.timeline.within(batch.created_at, self.timeline.drift)
            self.scored += [
                ScoredDemoRecord(r[IDENTIFIER], batch.created_at, label, probability, drift)
                for r, label, probability in zip(
                    batch.records, labels[start:end], probabilities[start:end], strict=True,
                )
            ]
            start = end
        self.batches.clear()


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    """A dataset row as an API record: the features and the customer id, NaN as None."""
    out = {f.name: (None if pd.isna(record[f.name]) else record[f.name]) for f in FEATURES}
    out[IDENTIFIER] = record[IDENTIFIER]
    return out


def _drifted(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A promotion's newcomers: monthly contracts, days of tenure, electronic check, paying more.

    Applied to fiber customers only (see `sample_records`): the model then predicts churn for every
    one of them, which is what the single-label and churn-rate alerts are for.
    """
    tenure = rng.randint(0, 4)
    monthly = min(FEATURES_BY_NAME["monthly_charges"].maximum, round(record["monthly_charges"] * 1.1, 2))
    return {
        **record, "contract": "Month-to-month", "tenure": tenure, "monthly_charges": monthly,
        "payment_method": "Electronic check", "paperless_billing": 1,
        "total_charges": round(monthly * tenure, 2) if tenure else None,
    }


def _ordinary_errors(rows: int, rng: random.Random) -> tuple[dict[tuple[str, str | None], int], int]:
    """Most files are clean; some carry a few bad rows of one or two kinds."""
    if rng.random() < 0.7:
        return {}, 0
    errors: dict[tuple[str, str | None], int] = {}
    for _ in range(rng.randint(1, 2)):
        kind = rng.choice(ROW_ERRORS)
        column = rng.choice(NUMERIC_FEATURES if kind == ErrorType.OUT_OF_RANGE else REQUIRED_COLUMNS)
        errors[(kind.value, column)] = rng.randint(1, max(1, rows // 8))
    return errors, min(rows, sum(errors.values()))


def _criticality(invalid: int, rows: int, errors: dict[tuple[str, str | None], int]) -> str:
    """The ingestion's rule (jobs/validation.py::criticality_of), on the demo's counts."""
    if any(kind == ErrorType.MISSING_COLUMN for kind, _ in errors) or invalid / rows >= 0.5:
        return "high"
    if invalid == 0:
        return "none"
    return "low" if invalid / rows < 0.1 else "medium"


def _outcome(invalid: int, rows: int) -> str:
    return "good" if invalid == 0 else "bad" if invalid == rows else "mixed"


def remove_demo_history(session: Session) -> tuple[int, int]:
    """Delete exactly what the demo wrote; returns (files, predictions) removed."""
    predictions = delete_predictions(session=session, batch_key_prefix=DEMO_BATCH_PREFIX)
    files = delete_ingestion_statistics(session=session, dag_run_id=DEMO_RUN_ID)
    return files, predictions


def seed_demo_history(*, session: Session, hours: float, end: datetime, seed: int = 7) -> dict[str, int]:
    """Replace any earlier demo history with `hours` of it ending at `end`; returns what was written."""
    timeline = DemoTimeline.ending_at(end, hours)
    remove_demo_history(session)
    writer = DemoWriter(
        session=session, timeline=timeline, predictor=Predictor(), dataset=load_dataset(),
        reports_base_url=ReportSettings().reports_base_url.rstrip("/"), rng=random.Random(seed),
    )
    for moment in timeline.minutes():
        writer.write_minute(moment)
    writer.score_scheduled(timeline.end)
    writer.write_predictions()
    writer.counts["realized_windows"] = write_demo_realized_performance(
        writer.scored, dataset=writer.dataset, model_version=writer.predictor.version, rng=writer.rng)
    return writer.counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=6.0, help=f"history length (at least {MIN_HOURS})")
    parser.add_argument("--remove", action="store_true", help="delete the demo history and write nothing")
    parser.add_argument("--seed", type=int, default=7, help="random seed, for a reproducible story")
    args = parser.parse_args(argv)
    if not args.remove and args.hours < MIN_HOURS:
        parser.error(f"--hours must be at least {MIN_HOURS} so that the incidents fit")
    with session_scope() as session:
        if args.remove:
            files, predictions = remove_demo_history(session)
            print(f"removed the demo history: {files} ingested files, {predictions} predictions")
            return
        counts = seed_demo_history(session=session, hours=args.hours, end=datetime.now(UTC), seed=args.seed)
    print(f"wrote {args.hours:g} hours of demo history: {counts['files']} ingested files, "
          f"{counts['predictions']} predictions (remove with --remove)")


if __name__ == "__main__":
    main()
