"""What the API serves from its first second: the cached or local model, admitted, then the registry's.

    start_serving(holder, state, registry, settings, metrics) -> RegistryFollower | None

Order at start: (1) with a registry, the champion this API last admitted (MODEL_CACHE_DIR), else
(2) the local artifacts (MODEL_ARTIFACTS_DIR), each admitted first (model/admission.py); then the
follower polls the registry at once, and the start waits for that first poll at most
MODEL_STARTUP_WAIT_SECONDS: a registry that answers is followed before the first request, one that
is down or hangs delays the start by that bound at most (every call is bounded too).
"""

from __future__ import annotations

import logging
import threading

from api.serving import (
    Admissions,
    ModelHolder,
    RegistryFollower,
    ServedModels,
    ServingMetrics,
    ServingState,
    build_served,
    record_references,
)
from core.settings import ApiServerSettings, RegistrySettings
from model.files import METADATA_FILE, MODEL_FILE
from model.onnx_export import ONNX_FILE

log = logging.getLogger(__name__)


def start_serving(
    holder: ModelHolder, state: ServingState, registry: RegistrySettings, settings: ApiServerSettings,
    metrics: ServingMetrics | None = None,
) -> RegistryFollower | None:
    """Fill `holder` with an admitted model (or leave it empty: /health says so) and start following
    the registry. Returns the follower to stop at shutdown (None when MLFLOW_TRACKING_URI is unset)."""
    admissions = Admissions(state, metrics)
    follower = RegistryFollower(holder, registry, state, admissions) if registry.enabled else None
    if follower is not None:
        cached = follower.load_cached()
        if cached is not None:
            holder.swap(cached)
            log.info("serving the cached champion %s until the registry answers", cached.champion.version)
    if holder.current is None:
        local = settings.model_artifacts_dir
        missing = [name for name in (MODEL_FILE, METADATA_FILE, ONNX_FILE) if not (local / name).exists()]
        if missing:  # nothing trained here (a registry may still bring a model)
            log.error("no model in %s (%s missing): run `python -m model.train`", local, ", ".join(missing))
        else:
            predictor = admissions.admit(local, alias="champion")
            if predictor is not None:
                holder.swap(build_served(predictor, source="local"))
    served = holder.current
    if served is not None:
        log.info("model %s loaded (%s)", served.champion.version, served.source)
    if follower is not None:
        follower.start()
        if not follower.first_attempt.wait(registry.model_startup_wait_seconds):
            log.warning("the registry did not answer within %.0f s of start: serving %s, following "
                        "in the background", registry.model_startup_wait_seconds,
                        served.champion.version if served else "nothing")
    if served is not None and holder.current is served:
        # the database may be down at start: the references are recorded in the background
        threading.Thread(target=_record_quietly, args=(holder, served), daemon=True,
                         name="record-references").start()
    return follower


def _record_quietly(holder: ModelHolder, served: ServedModels) -> None:
    """The start model's references, unless the follower replaced it meanwhile (it records its own)."""
    if holder.current is not served:
        return
    try:
        record_references(served.champion, served.champion_number, served=True)
    except Exception:  # the database is another service
        log.exception("could not record the served model's references")
