"""The lifecycle loop on a seeded concept drift, with no human step: labels -> retrained
challenger -> shadow scoring -> gated promotion -> the API serving the new champion.

    python -m scripts.concept_drift_scenario      (needs the running stack: API, MLflow, PostgreSQL)

The drift: customers with fibre-optic internet on a one- or two-year contract, who rarely left,
now all leave (a competitor's fibre offer, say). Their features do not change, only their
outcomes (concept drift, not data drift: the drift dashboard stays quiet). Customers of the
dataset are scored by the API under scenario ids (`SCN<run>-<batch>-<id>`), so their labels are
the scenario's and never mix with the demo's. The stages:

1. `serve-before`: batch A scored by the champion; its drifted labels written and ingested; the
   champion's realized F1 on A measured.
2. `retrain`: the retrain_model job (gate, then retrain-if-needed) trains a challenger on the
   original training split plus the settled labelled serving rows (every outcome of a batch
   arrives at once: coverage 100 %, settled) and registers it; the API picks it up. Batch A's
   holdout customers, scored under scenario ids, are left out by their feature values.
3. `shadow`: batch B scored by the champion and, in shadow, by the challenger; labels ingested.
4. `gate`: the retrain_model job's gate compares both on B's labelled customers and promotes the
   challenger (or says why not); the API switches.
5. `serve-after`: batch C scored by the new champion, labelled; its realized F1 measured.

The label ingestion and retrain jobs are the DAGs' own task functions, called here; a test passes
`dag.test()` runners instead (tests/lifecycle/test_concept_drift_scenario.py). When the DAGs also
run on their schedules (`make run`), whichever gets a file first ingests it: the scenario waits
for its labels to be stored, not for its own call. Prints the realized F1 before and after and the
seconds each stage took. `RUN_CONCEPT_DRIFT_SCENARIO=true make run` runs it once the stack is up.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from core.api_client import ChurnApiClient
from core.settings import ApiClientSettings, LabelSettings, MlflowServerSettings, RegistrySettings
from model.contract import FEATURE_NAMES, IDENTIFIER, POSITIVE_LABEL, TARGET
from model.data import DATASET_PATH
from scripts.seed_labels import LABEL_FILE_COLUMNS, write_label_file

BATCH_SIZES = {"A": 2400, "B": 800, "C": 1200}  # B stays under RETRAIN_MIN_NEW_LABELS (1000)
CHUNK = 500
WAIT_SECONDS = 300


def in_drifting_segment(frame: pd.DataFrame) -> pd.Series:
    """The segment whose outcomes change: fibre-optic internet on a one- or two-year contract."""
    return frame["internet_service"].eq("Fiber optic") & frame["contract"].ne("Month-to-month")


def drifted_outcomes(frame: pd.DataFrame) -> pd.Series:
    """The dataset's own outcome, except in the drifting segment, where every customer leaves."""
    return frame[TARGET].where(~in_drifting_segment(frame), POSITIVE_LABEL)


def direct_ingest() -> None:
    """What the label_ingestion DAG does: ingest every waiting label file, refresh realized F1."""
    from jobs.labels import ingest_label_file, list_label_files
    from jobs.realized import refresh_realized_performance

    settings = LabelSettings()
    for path in list_label_files(settings.labels_dir):
        ingest_label_file(path, settings=settings, dag_run_id=None)
    refresh_realized_performance()


def direct_retrain_job() -> None:
    """What the retrain_model DAG does: the gate first, then retrain when the condition holds."""
    from jobs.lifecycle import promotion_gate_step, retrain_if_needed

    promotion_gate_step()
    retrain_if_needed()


@dataclass
class ScenarioReport:
    """Realized F1 of the champion on the drifted batch before and of the new one after, and
    the seconds each stage took."""

    stages: dict[str, float] = field(default_factory=dict)
    champion_before: str = ""
    champion_after: str = ""
    f1_before: float | None = None
    f1_before_interval: tuple[float | None, float | None] = (None, None)
    f1_after: float | None = None
    f1_after_interval: tuple[float | None, float | None] = (None, None)
    gate: list[str] = field(default_factory=list)  # the gate's reasons to refuse; empty: promoted
    gate_figures: str = ""  # the gate's comparison on batch B's customers, scored by both

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        yield
        self.stages[name] = time.monotonic() - began
        print(f"[scenario] {name}: {self.stages[name]:.1f} s", flush=True)

    def summary(self) -> str:
        def f1(value: float | None, interval: tuple[float | None, float | None]) -> str:
            if value is None:
                return "n/a"
            low, high = interval
            return f"{value:.3f} (95 % interval {low:.3f}-{high:.3f})" if low is not None and high \
                is not None else f"{value:.3f}"

        lines = [f"realized F1 before: {f1(self.f1_before, self.f1_before_interval)} "
                 f"(champion {self.champion_before}, drifted batch A)",
                 f"realized F1 after:  {f1(self.f1_after, self.f1_after_interval)} "
                 f"(champion {self.champion_after}, drifted batch C)",
                 "gate: " + ("; ".join(self.gate) or "promoted") + f" ({self.gate_figures})"]
        lines += [f"  {name:14} {seconds:7.1f} s" for name, seconds in self.stages.items()]
        lines.append(f"  {'total':14} {sum(self.stages.values()):7.1f} s")
        return "\n".join(lines)


class ConceptDriftScenario:
    """One run of the scenario against a running API (see the module docstring)."""

    def __init__(self, client: ChurnApiClient, ingest: Callable[[], Any] = direct_ingest,
                 retrain_job: Callable[[], Any] = direct_retrain_job, seed: int = 15) -> None:
        self.client = client
        self.ingest = ingest
        self.retrain_job = retrain_job
        self.run_id = datetime.now(UTC).strftime("%H%M%S")
        dataset = pd.read_csv(DATASET_PATH)
        order = np.random.default_rng(seed).permutation(len(dataset))
        starts = np.cumsum([0, *BATCH_SIZES.values()])
        self.batches = {name: dataset.iloc[order[start:start + size]].reset_index(drop=True)
                        for (name, size), start in zip(BATCH_SIZES.items(), starts, strict=False)}
        self.report = ScenarioReport()

    def run(self) -> ScenarioReport:
        with self.report.stage("serve-before"):
            self.report.champion_before = self.client.model_info()["champion"]["model_version"]
            self._score_and_label("A")
            self.report.f1_before, self.report.f1_before_interval = self._realized_f1("A")
        with self.report.stage("retrain"):
            self.retrain_job()
            self._wait_for_api(lambda info: info["challenger"] is not None, "the API scores a challenger")
        with self.report.stage("shadow"):
            ids = self._score("B")
            self._wait_for_shadow(ids)
            self._label("B")
        with self.report.stage("gate"):
            self.retrain_job()
            self.report.gate = self._latest_gate_reasons()
            self._wait_for_api(lambda info: info["champion"]["model_version"] != self.report.champion_before,
                               "the API serves the promoted challenger")
        with self.report.stage("serve-after"):
            self.report.champion_after = self.client.model_info()["champion"]["model_version"]
            self._score_and_label("C")
            self.report.f1_after, self.report.f1_after_interval = self._realized_f1("C")
        return self.report

    # --- steps ------------------------------------------------------------------------------------

    def _customer_ids(self, batch: str) -> pd.Series:
        return f"SCN{self.run_id}-{batch}-" + self.batches[batch][IDENTIFIER].astype(str)

    def _score(self, batch: str) -> list[int]:
        frame = self.batches[batch]
        features = frame[list(FEATURE_NAMES)].astype(object).where(frame[list(FEATURE_NAMES)].notna(), None)
        customers = self._customer_ids(batch)
        records = [{IDENTIFIER: customer, **row}
                   for customer, row in zip(customers, features.to_dict("records"), strict=True)]
        ids: list[int] = []
        for start in range(0, len(records), CHUNK):
            answer = self.client.predict(records[start:start + CHUNK], source="scheduled",
                                         file_name=f"concept-drift-{self.run_id}-{batch}.csv")
            ids += [p["id"] for p in answer["predictions"]]
        return ids

    def _label(self, batch: str) -> None:
        """Write the batch's drifted outcomes, known now, and wait until they are stored."""
        labels = pd.DataFrame({IDENTIFIER: self._customer_ids(batch),
                               "churn": drifted_outcomes(self.batches[batch]),
                               "known_at": datetime.now(UTC)})[LABEL_FILE_COLUMNS]
        write_label_file(labels, LabelSettings().labels_dir, prefix=f"concept_drift_{batch}")
        self.ingest()
        self._wait(lambda: self._stored_labels(batch) == len(labels), f"batch {batch}'s labels stored")

    def _score_and_label(self, batch: str) -> None:
        self._score(batch)
        self._label(batch)

    def _judged(self, batch: str) -> pd.DataFrame:
        from db.labels import labelled_predictions
        from db.session import session_scope

        with session_scope() as session:
            judged = labelled_predictions(session=session)
        return judged[judged[IDENTIFIER].isin(set(self._customer_ids(batch)))]

    def _stored_labels(self, batch: str) -> int:
        return len(self._judged(batch))

    def _realized_f1(self, batch: str) -> tuple[float | None, tuple[float | None, float | None]]:
        from model.performance import realized_performance

        judged = self._judged(batch)
        measured = realized_performance(judged["outcome"].to_numpy(), judged["predicted_label"].to_numpy(),
                                        judged["churn_probability"].to_numpy())
        return measured.f1, (measured.f1_interval.low, measured.f1_interval.high)

    def _wait_for_shadow(self, ids: list[int]) -> None:
        from db.session import session_scope
        from db.shadow_predictions import count_shadow_predictions

        def scored() -> bool:
            with session_scope() as session:
                return count_shadow_predictions(session=session, prediction_ids=ids) == len(ids)

        self._wait(scored, "the challenger's shadow scores stored")

    def _latest_gate_reasons(self) -> list[str]:
        from jobs.lifecycle import recent_decisions

        for decision in recent_decisions(5):
            if decision["action"] in ("promote", "reject", "keep"):
                if decision["champion_value"] is not None and decision["challenger_value"] is not None:
                    self.report.gate_figures = (
                        f"{decision['metric']} champion {decision['champion_value']:.3f} vs challenger "
                        f"{decision['challenger_value']:.3f} on {decision['rows']} labelled customers")
                return [] if decision["action"] == "promote" else [str(decision["reason"])]
        return ["no gate decision recorded"]

    def _wait_for_api(self, condition: Callable[[dict[str, Any]], bool], what: str) -> None:
        self._wait(lambda: condition(self.client.model_info()), what)

    @staticmethod
    def _wait(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"concept-drift scenario: not within {timeout:.0f} s: {what}")
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    # run by hand beside `make run`: the registry is the MLflow server make run started
    if not RegistrySettings().enabled:
        os.environ["MLFLOW_TRACKING_URI"] = MlflowServerSettings().url
    settings = ApiClientSettings()
    client = ChurnApiClient(settings.api_url, settings.token_value(), settings.api_timeout_seconds)
    report = ConceptDriftScenario(client).run()
    print(report.summary(), flush=True)


if __name__ == "__main__":
    main()
