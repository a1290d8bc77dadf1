"""The models the API serves, how each is admitted, and how the API follows the registry.

One `ModelHolder` per app holds one `ServedModels` (the champion's predictor, the challenger's if
any, which registry version and training run each is). A request reads `holder.current` once and
uses that snapshot for its whole life, so it is scored and stored by one version from start to
end. A switch builds the new `ServedModels` completely (artifacts downloaded, pipelines loaded,
admission passed) before one assignment replaces the reference.

Nothing is served before `model.admission.admit` passed on it: at start (the cached or local
model), on follow (the champion), as challenger. A refused version is never served: the current
champion keeps serving (a refused challenger is simply not shadowed); the refusal shows in
/health and GET /model, in the counter `churn_model_admission_refusals_total{alias,version,reason}`
(incremented at every poll that still finds an alias on a refused version) and in one Teams card
per refused version and alias (api/refusals.py).

With MLFLOW_TRACKING_URI set, a `RegistryFollower` thread checks the `champion` and `challenger`
aliases at start and every MODEL_POLL_SECONDS. A version is known by its training run id, never
by its number alone: a registered model deleted and registered again reuses number 1. Every
registry call is bounded (MLFLOW_HTTP_REQUEST_TIMEOUT, MLFLOW_HTTP_REQUEST_MAX_RETRIES), and the
API waits at most MODEL_STARTUP_WAIT_SECONDS for the registry at start: with the registry down it
serves the champion it last admitted (kept under MODEL_CACHE_DIR), else MODEL_ARTIFACTS_DIR, and
follows once the registry answers. Each version the API admits gets its database references
(training metrics, calibration, drift baseline) when they are missing, and the champion is
marked as served (`model_versions.served_since`), which the drift SQL compares with.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.settings import AlertSettings, RegistrySettings
from model.admission import AdmissionError, admit
from model.files import METADATA_FILE
from model.predictor import Predictor

log = logging.getLogger(__name__)
CHAMPION_POINTER = "champion.json"  # in the model's cache folder: the champion last served


@dataclass(frozen=True)
class ServedModels:
    """What one request is served by: never changed once built (a switch builds a new one)."""

    champion: Predictor
    champion_number: int | None = None  # registry version number; None: not from the registry
    challenger: Predictor | None = None  # scored in shadow, never answered
    challenger_number: int | None = None
    champion_run: str | None = None  # the registry version's training run id
    challenger_run: str | None = None
    source: str = "local"  # "registry", "cache" (the last admitted champion) or "local" artifacts


class ModelHolder:
    """The one reference to the served models; `current` is read per request, `swap` replaces it.

    Reading or assigning one attribute is atomic in CPython, so no lock is needed on the request
    path; `swap` is only ever called with a fully built `ServedModels`.
    """

    def __init__(self, current: ServedModels | None = None) -> None:
        self.current = current

    def swap(self, models: ServedModels) -> ServedModels | None:
        """Serve `models` from the next request on; returns the replaced ones."""
        previous, self.current = self.current, models
        return previous


def build_served(
    champion: Predictor, *, champion_number: int | None = None, challenger: Predictor | None = None,
    challenger_number: int | None = None, champion_run: str | None = None,
    challenger_run: str | None = None, source: str = "local",
) -> ServedModels:
    """The served models, built whole: the champion, and the challenger scored in shadow if any."""
    return ServedModels(champion=champion, champion_number=champion_number, challenger=challenger,
                        challenger_number=challenger_number, champion_run=champion_run,
                        challenger_run=challenger_run, source=source)


@dataclass(frozen=True)
class Refusal:
    """A version admission refused: which alias pointed at it, and why."""

    alias: str
    number: int | None
    model_version: str
    run_id: str | None
    reason: str
    detail: str
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"alias": self.alias, "registry_version": self.number, "model_version": self.model_version,
                "run_id": self.run_id, "reason": self.reason, "detail": self.detail,
                "at": self.at.isoformat(timespec="seconds")}


@dataclass
class ServingState:
    """What /health, GET /model and the metrics report about serving (written by the follower)."""

    registry_enabled: bool = False
    registry_reachable: bool | None = None  # None: not asked yet
    last_follow: datetime | None = None  # the last poll that read both aliases
    last_error: str | None = None
    champion: dict[str, Any] | None = None  # the registry's, at the last successful poll
    challenger: dict[str, Any] | None = None
    refusals: dict[tuple[str, str], Refusal] = field(default_factory=dict)  # (alias, run or source)

    def active_refusals(self) -> list[Refusal]:
        """Refusals of versions an alias still points at (or of the local model at start)."""
        pointed = {(alias, (v or {}).get("run_id")) for alias, v in
                   (("champion", self.champion), ("challenger", self.challenger))}
        return [r for r in self.refusals.values() if (r.alias, r.run_id) in pointed or r.run_id is None]


def agreement(models: ServedModels | None, state: ServingState) -> bool | None:
    """True when the served champion and challenger are the registry's (by run id); None without a
    registry or before it ever answered. A registry unreachable now is judged on its last answer."""
    if not state.registry_enabled or state.last_follow is None:
        return None
    if state.champion is None:  # nothing registered: whatever serves is all there is
        return True
    if models is None:
        return False
    challenger = state.challenger
    wanted_challenger = None if challenger is None or challenger["run_id"] == state.champion["run_id"] \
        else challenger["run_id"]
    return (models.champion_run, models.challenger_run) == (state.champion["run_id"], wanted_challenger)


def serving_report(models: ServedModels | None, state: ServingState) -> dict[str, Any]:
    """The served versions, the registry's aliases, their agreement and the refusals (JSON-ready)."""

    def served(predictor: Predictor | None, number: int | None, run: str | None) -> dict[str, Any] | None:
        return None if predictor is None else {"registry_version": number, "model_version": predictor.version,
                                               "run_id": run}

    return {
        "served": None if models is None else {
            "champion": served(models.champion, models.champion_number, models.champion_run),
            "challenger": served(models.challenger, models.challenger_number, models.challenger_run),
            "source": models.source,
        },
        "registry": {
            "enabled": state.registry_enabled, "reachable": state.registry_reachable,
            "champion": state.champion, "challenger": state.challenger,
            "last_follow": None if state.last_follow is None
            else state.last_follow.isoformat(timespec="seconds"),
            "last_error": state.last_error,
        },
        "agrees_with_registry": agreement(models, state),
        "refusals": [r.as_dict() for r in state.active_refusals()],
    }


class ServingMetrics(Collector):
    """Prometheus: the refusal counter, and gauges read at each scrape from the holder and state.

    churn_model_admission_refusals_total{alias,version,reason}  refusals (one per poll still refused)
    churn_model_served_info{version,alias}                     1 per served version
    churn_model_registry_agreement                             1 agree, 0 not (absent without registry)
    churn_model_registry_reachable                             1 / 0 (absent without registry)
    """

    def __init__(self, registry: CollectorRegistry, holder: ModelHolder, state: ServingState) -> None:
        self.holder, self.state = holder, state
        self.refusals = Counter(
            "churn_model_admission_refusals", "Model versions refused by admission, per poll that still "
            "finds an alias on them (version: the registry number, or the model version string)",
            ["alias", "version", "reason"], registry=registry,
        )
        registry.register(self)

    def collect(self) -> Any:
        models = self.holder.current
        info = GaugeMetricFamily("churn_model_served_info", "The model versions this API serves (1)",
                                 labels=["version", "alias"])
        if models is not None:
            info.add_metric([models.champion.version, "champion"], 1)
            if models.challenger is not None:
                info.add_metric([models.challenger.version, "challenger"], 1)
        yield info
        if self.state.registry_enabled:
            agrees = agreement(models, self.state)
            yield GaugeMetricFamily("churn_model_registry_agreement",
                                    "1 when the served champion and challenger are the registry's",
                                    value=1 if agrees else 0)
            yield GaugeMetricFamily("churn_model_registry_reachable",
                                    "1 when the registry answered the last poll",
                                    value=1 if self.state.registry_reachable else 0)


class Admissions:
    """Admits versions and remembers refusals: counts them, alerts once per version and alias."""

    def __init__(self, state: ServingState, metrics: ServingMetrics | None,
                 alerts: AlertSettings | None = None) -> None:
        self.state, self.metrics = state, metrics
        self.alerts = alerts or AlertSettings()
        self._alerted: set[tuple[str, str]] = set()

    def admit(self, folder: Path, *, alias: str, expected_version: str | None = None,
              number: int | None = None, run_id: str | None = None) -> Predictor | None:
        """The admitted Predictor, or None when refused (recorded, counted, alerted)."""
        try:
            return admit(folder, expected_version)
        except AdmissionError as refused:
            self.refuse(alias=alias, number=number, run_id=run_id, reason=refused.reason,
                        detail=refused.detail, model_version=expected_version or _version_in(folder))
            return None

    def refuse(self, *, alias: str, number: int | None, run_id: str | None, reason: str, detail: str,
               model_version: str) -> None:
        key = (alias, run_id or str(number))
        refusal = self.state.refusals.get(key) or Refusal(
            alias, number, model_version, run_id, reason, detail, datetime.now(UTC))
        self.state.refusals[key] = refusal
        self.count(refusal)
        if key not in self._alerted:
            self._alerted.add(key)
            log.error("refused to serve version %s (%s) as %s: %s: %s", number, model_version, alias,
                      reason, detail)
            from api.refusals import alert_refusal

            alert_refusal(refusal, self.alerts)

    def count(self, refusal: Refusal) -> None:
        if self.metrics is not None:
            version = str(refusal.number) if refusal.number is not None else refusal.model_version
            self.metrics.refusals.labels(refusal.alias, version, refusal.reason).inc()


def _version_in(folder: Path) -> str:
    try:
        return str(json.loads((folder / METADATA_FILE).read_text()).get("model_version", "unknown"))
    except (OSError, ValueError, AttributeError):
        return "unknown"


class RegistryFollower:
    """Admits and serves the registry's champion and challenger, and follows their aliases in a thread.

    Admitted versions live under MODEL_CACHE_DIR/<model name>/<run id>/; `champion.json` there names
    the champion last served, which `load_cached` serves at the next start. Any registry or loading
    error is logged and the current models keep serving; the next poll tries again.
    """

    def __init__(self, holder: ModelHolder, settings: RegistrySettings, state: ServingState,
                 admissions: Admissions) -> None:
        from model.registry import apply_http_limits

        apply_http_limits(settings)
        self.holder, self.settings, self.state, self.admissions = holder, settings, state, admissions
        state.registry_enabled = True
        self.folder = settings.model_cache_dir / settings.mlflow_model_name
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # a read-only image: follow anyway, without a cache across restarts
            self.folder = Path(tempfile.mkdtemp(prefix="churn-model-cache-"))
            log.warning("MODEL_CACHE_DIR is not writable (%s): admitted versions kept in %s until exit",
                        error, self.folder)
        self._stop = threading.Event()
        self.first_attempt = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded: dict[str, Predictor] = {}  # by run id
        self._refused: set[str] = set()  # run ids admission refused (never retried)
        self._referenced: set[str] = set()  # run ids whose database references are recorded

    # --- start -------------------------------------------------------------------------------

    def load_cached(self) -> ServedModels | None:
        """The champion last served (admitted again, from the cache folder), or None."""
        pointer = self.folder / CHAMPION_POINTER
        try:
            cached = json.loads(pointer.read_text())
            folder = self.folder / cached["run_id"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        predictor = self.admissions.admit(
            folder, alias="champion", expected_version=cached.get("model_version"),
            number=cached.get("number"), run_id=cached["run_id"])
        if predictor is None:
            return None
        self._loaded[cached["run_id"]] = predictor
        return build_served(predictor, champion_number=cached.get("number"), champion_run=cached["run_id"],
                            source="cache")

    # --- following ---------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Check both aliases once; switch when either moved to an admissible version. True when a
        switch happened. Raises what the registry raises (unreachable, timed out): callers log it."""
        from model.registry import CHALLENGER, CHAMPION, version_by_alias

        try:
            champion = version_by_alias(CHAMPION, self.settings)
            challenger = version_by_alias(CHALLENGER, self.settings)
        except Exception as error:
            self.state.registry_reachable = False
            self.state.last_error = f"{type(error).__name__}: {str(error)[:300]}"
            raise
        self.state.registry_reachable, self.state.last_error = True, None
        self.state.champion = None if champion is None else _described(champion)
        self.state.challenger = None if challenger is None else _described(challenger)
        self.state.last_follow = datetime.now(UTC)
        if champion is None:
            return False  # nothing registered yet: keep serving what we have
        current = self.holder.current
        champion_predictor = self._admitted(CHAMPION, champion)
        if champion_predictor is None:  # refused: the current champion keeps serving
            if current is None:
                return False
            champion_predictor, champion_number, champion_run, source = (
                current.champion, current.champion_number, current.champion_run, current.source)
        else:
            champion_number, champion_run, source = champion.number, champion.run_id, "registry"
        challenger_predictor = challenger_number = challenger_run = None
        if challenger is not None and challenger.run_id != champion.run_id:
            challenger_predictor = self._admitted(CHALLENGER, challenger)
            if challenger_predictor is not None:
                challenger_number, challenger_run = challenger.number, challenger.run_id
        if current is not None and (current.champion_run, current.challenger_run, current.champion_number,
                                    current.challenger_number, current.source) == (
                champion_run, challenger_run, champion_number, challenger_number, source):
            return False
        models = build_served(champion_predictor, champion_number=champion_number, champion_run=champion_run,
                              challenger=challenger_predictor, challenger_number=challenger_number,
                              challenger_run=challenger_run, source=source)
        self.holder.swap(models)
        if champion_run is not None and source == "registry":
            self._remember_champion(champion_run, champion_number, champion_predictor.version)
        self._loaded = {run: p for run, p in self._loaded.items() if run in (champion_run, challenger_run)}
        self._prune_cache({champion_run, challenger_run})
        log.info("serving champion v%s (%s), challenger %s", champion_number, champion_predictor.version,
                 f"v{challenger_number}" if challenger_number else "none")
        return True

    def _admitted(self, alias: str, version: Any) -> Predictor | None:
        """The version's predictor once admitted (downloaded and checked once per run), None when
        refused. A download that fails is a refusal (`unloadable`) tried again at the next poll."""
        from model.registry import download_run, is_unreachable

        run = version.run_id
        if run in self._loaded:
            self.record_references(self._loaded[run], version.number, run, served=alias == "champion")
            return self._loaded[run]
        if run in self._refused:
            refusal = self.admissions.state.refusals.get((alias, run))
            if refusal is None:  # refused under the other alias before: a refusal under this one too
                other = next(r for (a, rid), r in self.state.refusals.items() if rid == run)
                self.admissions.refuse(alias=alias, number=version.number, run_id=run, reason=other.reason,
                                       detail=other.detail, model_version=version.model_version)
            else:
                self.admissions.count(refusal)
            return None
        try:
            folder = download_run(run, self.folder / run, self.settings)
        except Exception as error:  # the registry answered, its artifacts did not: tried again next poll
            if is_unreachable(error):
                raise  # the registry went away meanwhile: an outage, not a refusal
            self.admissions.refuse(alias=alias, number=version.number, run_id=run, reason="unloadable",
                                   detail=f"its artifacts could not be downloaded: {type(error).__name__}: "
                                          f"{str(error)[:300]}", model_version=version.model_version)
            return None
        predictor = self.admissions.admit(folder, alias=alias, expected_version=version.model_version or None,
                                          number=version.number, run_id=run)
        if predictor is None:
            self._refused.add(run)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        self.state.refusals.pop((alias, run), None)  # an earlier failed download is over
        self._loaded[run] = predictor
        self.record_references(predictor, version.number, run, served=alias == "champion")
        return predictor

    def record_references(self, predictor: Predictor, number: int | None, run: str | None, *,
                          served: bool) -> None:
        """The version's database row (metrics, calibration, drift baseline) when missing, and the
        champion marked as served. A database error is logged; the next poll tries again."""
        key = f"{run}:{served}"
        if key in self._referenced:
            return
        try:
            record_references(predictor, number, served=served)
        except Exception:  # the database is another service: serving goes on, the next poll retries
            log.exception("could not record the references of %s", predictor.version)
            return
        self._referenced = {k for k in self._referenced if not (served and k.endswith(":True"))} | {key}

    def _remember_champion(self, run: str, number: int | None, version: str) -> None:
        pointer = self.folder / CHAMPION_POINTER
        partial = pointer.with_name(f".{pointer.name}.partial")
        try:
            partial.write_text(json.dumps({"run_id": run, "number": number, "model_version": version}))
            partial.replace(pointer)
        except OSError:
            log.exception("could not remember the champion in %s", pointer)

    def _prune_cache(self, keep: set[str | None]) -> None:
        """Remove cached versions no alias serves (the champion named by champion.json stays)."""
        try:
            pointed = json.loads((self.folder / CHAMPION_POINTER).read_text()).get("run_id")
        except (OSError, ValueError, AttributeError):
            pointed = None
        for child in self.folder.iterdir() if self.folder.exists() else ():
            if child.is_dir() and not child.name.startswith(".") and child.name not in keep | {pointed}:
                shutil.rmtree(child, ignore_errors=True)

    def start(self) -> None:
        """Poll now, then every MODEL_POLL_SECONDS, in a daemon thread (`first_attempt` is set once
        the first poll ended, whatever its outcome)."""
        self._thread = threading.Thread(target=self._follow, name="registry-follower", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        first, failing = True, False
        while first or not self._stop.wait(self.settings.model_poll_seconds):
            try:
                self.refresh()
                if failing:
                    log.info("the model registry answers again")
                failing = False
            except Exception as error:  # the registry is another service: its outage must not stop serving
                if not failing:  # the whole story once, then one line per failed poll
                    log.exception("could not follow the model registry; still serving the current models")
                else:
                    log.warning("the model registry still does not answer: %s", str(error)[:200])
                failing = True
            finally:
                if first:
                    self.first_attempt.set()
                first = False

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def _described(version: Any) -> dict[str, Any]:
    return {"registry_version": version.number, "model_version": version.model_version,
            "run_id": version.run_id}


def record_references(predictor: Predictor, number: int | None, *, served: bool) -> None:
    """Record the version's model_versions row (with its drift baseline and calibration) unless
    present, its registry number, and (`served`) mark it as the version being served."""
    from db.model_versions import has_model_version, mark_served, record_model_version, set_registry_version
    from db.session import session_scope

    with session_scope() as session:
        if not has_model_version(session=session, model_version=predictor.version):
            record_model_version(session=session, metadata=predictor.metadata)
        if number is not None:
            set_registry_version(session=session, model_version=predictor.version, registry_version=number)
        if served:
            mark_served(session=session, model_version=predictor.version)


def score_in_shadow(models: ServedModels, prediction_ids: list[int], records: list[dict[str, object]]) -> int:
    """The challenger's scores of just-stored predictions, stored apart (shadow_predictions).

    Runs after the champion's answer was stored (a background task of the request); never
    raises: a failing challenger is logged and the request it shadows is unaffected. Returns the
    rows stored (0 without a challenger or on failure).
    """
    challenger = models.challenger
    if challenger is None or not prediction_ids:
        return 0
    from db.session import session_scope
    from db.shadow_predictions import store_shadow_predictions

    try:
        probabilities = challenger.predict_proba(records)
        with session_scope() as session:
            return store_shadow_predictions(
                session=session, prediction_ids=prediction_ids, model_version=challenger.version,
                labels=challenger.decide(probabilities), probabilities=probabilities.tolist(),
            )
    except Exception:  # shadow scoring is an observation, never a reason to fail serving
        log.exception("challenger %s could not score %d records in shadow", challenger.version,
                      len(records))
        return 0
