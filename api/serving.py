"""The models the API serves, and how it follows the registry without a restart.

One `ModelHolder` per app holds one `ServedModels` (the champion's predictor,
the challenger's predictor if any, their registry version numbers). A request reads
`holder.current` once and uses that snapshot for its whole life, so it is scored and stored by
one version from start to end. A switch builds the new `ServedModels` completely (artifacts
downloaded, pipelines loaded) before one assignment replaces the reference: a request never sees
a half-loaded model, and requests in flight finish on the version they started with.

With MLFLOW_TRACKING_URI set, the API loads the version the alias `champion` points to at start
and a `RegistryFollower` thread checks the `champion` and `challenger` aliases every
MODEL_POLL_SECONDS. Unset (or the registry unreachable at start), it serves MODEL_ARTIFACTS_DIR
as before; the follower, when there is a registry, switches to its champion once it answers.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from core.settings import RegistrySettings
from model.predictor import Predictor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModels:
    """What one request is served by: never changed once built (a switch builds a new one)."""

    champion: Predictor
    champion_number: int | None = None  # registry version number; None: local artifacts
    challenger: Predictor | None = None  # scored in shadow, never answered
    challenger_number: int | None = None


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
    challenger_number: int | None = None,
) -> ServedModels:
    """The served models, built whole: the champion, and the challenger scored in shadow if any."""
    return ServedModels(champion=champion, champion_number=champion_number, challenger=challenger,
                        challenger_number=challenger_number)


class RegistryFollower:
    """Loads the registry's champion and challenger, and follows their aliases in a thread.

    Downloaded versions live in a temporary folder of this process (`v<number>/`), removed by
    `stop`. Any registry or loading error is logged and the current models keep serving; the
    next poll tries again.
    """

    def __init__(self, holder: ModelHolder, settings: RegistrySettings) -> None:
        self.holder = holder
        self.settings = settings
        self.folder = Path(tempfile.mkdtemp(prefix="churn-served-models-"))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded: dict[int, Predictor] = {}

    def refresh(self) -> bool:
        """Check both aliases once; switch when either moved. True when a switch happened.

        Raises what the registry raises (unreachable server, missing artifacts): callers log it.
        """
        from model.registry import CHALLENGER, CHAMPION, version_by_alias

        champion = version_by_alias(CHAMPION, self.settings)
        if champion is None:
            return False  # nothing registered yet: keep serving what we have
        challenger = version_by_alias(CHALLENGER, self.settings)
        challenger_number = None if challenger is None or challenger.number == champion.number \
            else challenger.number
        current = self.holder.current
        if current is not None and (current.champion_number, current.challenger_number) == (
                champion.number, challenger_number):
            return False
        models = build_served(
            self._predictor(champion.number), champion_number=champion.number,
            challenger=None if challenger_number is None else self._predictor(challenger_number),
            challenger_number=challenger_number,
        )
        self.holder.swap(models)
        self._loaded = {n: p for n, p in self._loaded.items() if n in (champion.number, challenger_number)}
        log.info("serving champion v%s (%s), challenger %s", champion.number, models.champion.version,
                 f"v{challenger_number}" if challenger_number else "none")
        return True

    def _predictor(self, number: int) -> Predictor:
        """The version's predictor, loaded whole (downloaded once per process)."""
        from model.registry import download_version

        if number not in self._loaded:
            self._loaded[number] = Predictor(download_version(number, self.folder, self.settings))
        return self._loaded[number]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="registry-follower", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.wait(self.settings.model_poll_seconds):
            try:
                self.refresh()
            except Exception:  # the registry is another service: its outage must not stop serving
                log.exception("could not follow the model registry; still serving the current models")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


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
