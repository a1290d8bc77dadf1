"""The model registry (MLflow): training runs, registered versions, the champion / challenger aliases.

    python -m model.registry register [--artifacts model/artifacts] [--alias auto|champion|challenger|none]
    python -m model.registry show

Every trained model is an MLflow run (parameters, holdout metrics, the confusion matrix, the drift
baseline, the dataset's hash, the training rows as its dataset input, and the whole artifacts
folder under `artifacts/`: what `model.predictor.Predictor` loads) and a version of the registered
model `MLFLOW_MODEL_NAME`, whose tag `model_version` is the version string stored with every
prediction. The version's MLflow model is a pyfunc (model/pyfunc.py) over the same artifacts that
decides as the API does (label at the version's threshold, reason codes), with a signature and
an input example. Artifacts that admission (model/admission.py) would refuse are never registered.
Serving loads the version the alias `champion` points to; the
alias `challenger` marks the candidate scored in shadow until the promotion gate decides.

With MLFLOW_TRACKING_URI unset there is no registry: training writes its local artifacts only and
the API serves them (`MODEL_ARTIFACTS_DIR`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.settings import REPO_ROOT, RegistrySettings
from model.contract import FEATURE_NAMES, FEATURES, TARGET
from model.files import (
    ARTIFACTS_DIR,
    CONFUSION_FILE,
    HYPERPARAMETERS,
    METADATA_FILE,
    SEED,
    TRAINING_DATA_FILE,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION, CHALLENGER = "champion", "challenger"
RUN_ARTIFACTS = "artifacts"  # the run's copy of the artifacts folder
log = logging.getLogger(__name__)



class RegistryNotConfiguredError(RuntimeError):
    """MLFLOW_TRACKING_URI is unset."""


def _tracking_uri(settings: RegistrySettings) -> str:
    if not settings.mlflow_tracking_uri:
        raise RegistryNotConfiguredError("MLFLOW_TRACKING_URI is unset: there is no model registry")
    return settings.mlflow_tracking_uri


@dataclass(frozen=True)
class RegisteredVersion:
    """A version of the registered model: MLflow's number and our version string (a content hash)."""

    number: int
    model_version: str
    run_id: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    created_ms: int | None = None  # when it was registered (MLflow's creation_timestamp, ms)


def client(settings: RegistrySettings | None = None) -> MlflowClient:
    """An MLflow client of the configured tracking server (RegistryNotConfiguredError when unset)."""
    from mlflow import MlflowClient

    settings = settings or RegistrySettings()
    if not settings.mlflow_tracking_uri:
        raise RegistryNotConfiguredError("MLFLOW_TRACKING_URI is unset: there is no model registry")
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri,
                        registry_uri=settings.mlflow_tracking_uri)


def _version(mv: Any) -> RegisteredVersion:
    return RegisteredVersion(
        number=int(mv.version), model_version=mv.tags.get("model_version", ""), run_id=mv.run_id,
        aliases=tuple(mv.aliases or ()), tags=dict(mv.tags or {}),
        created_ms=getattr(mv, "creation_timestamp", None),
    )


def log_training_run(
    artifacts_dir: Path = ARTIFACTS_DIR,
    *,
    alias: str | None = "auto",
    extra_params: dict[str, Any] | None = None,
    settings: RegistrySettings | None = None,
) -> RegisteredVersion | None:
    """Log the training run whose artifacts are in `artifacts_dir` and register it as a version.

    `alias`: "champion", "challenger", None (no alias) or "auto" (champion when the model has no
    champion yet, else challenger: a person's `python -m model.train` never replaces the served
    model without the gate). Returns None, doing nothing, when MLFLOW_TRACKING_URI is unset.
    Raises model.admission.AdmissionError, registering nothing, for artifacts that would not be
    admitted to serving (model/admission.py).
    """
    settings = settings or RegistrySettings()
    if not settings.enabled:
        return None
    import mlflow

    metadata = json.loads((artifacts_dir / METADATA_FILE).read_text())
    _check_admissible(artifacts_dir)
    mlflow.set_tracking_uri(_tracking_uri(settings))
    mlflow.set_registry_uri(_tracking_uri(settings))
    mlflow.set_experiment(settings.mlflow_experiment)
    with mlflow.start_run(run_name=metadata["model_version"]) as run:
        mlflow.log_params({**HYPERPARAMETERS, "seed": SEED, "threshold": metadata["threshold"],
                           "training_rows": metadata["training_rows"],
                           "holdout_rows": metadata["holdout_rows"], **(extra_params or {})})
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metadata["metrics"].items()}
                           | {"training_churn_rate": metadata["training_churn_rate"]})
        mlflow.set_tags({"model_version": metadata["model_version"],
                         "dataset_sha256": metadata.get("dataset_sha256", "")})
        mlflow.log_dict(metadata["baseline"], "drift_baseline.json")
        if (artifacts_dir / CONFUSION_FILE).exists():
            mlflow.log_artifact(str(artifacts_dir / CONFUSION_FILE))
        mlflow.log_artifacts(str(artifacts_dir), RUN_ARTIFACTS)
        _log_training_dataset(artifacts_dir, metadata["model_version"])
        logged = _log_pyfunc(artifacts_dir)
    registry = client(settings)
    from datetime import UTC, datetime

    mv = mlflow.register_model(logged.model_uri, settings.mlflow_model_name, tags={
        "model_version": metadata["model_version"], "trained_at": metadata["trained_at"],
        "holdout_f1": str(metadata["metrics"]["f1"]),
        # the gate judges a challenger on predictions made after this time only
        "registered_at": datetime.now(UTC).isoformat(),
    })
    registry.set_model_version_tag(settings.mlflow_model_name, mv.version, "run_id", run.info.run_id)
    number = int(mv.version)
    if alias == "auto":
        alias = CHALLENGER if version_by_alias(CHAMPION, settings) is not None else CHAMPION
    if alias is not None:
        set_alias(alias, number, settings)
    log.info("registered %s version %s (%s) as %s", settings.mlflow_model_name, number,
             metadata["model_version"], alias)
    return get_version(number, settings)


def _check_admissible(artifacts_dir: Path) -> None:
    """Refuse (model.admission.AdmissionError) to register what the API would refuse to serve."""
    from model.admission import admit

    admit(artifacts_dir)


def _log_training_dataset(artifacts_dir: Path, version: str) -> None:
    """The training rows (features and target) as the run's MLflow dataset input (context training).

    Nothing is logged for artifacts trained before the rows were kept (no training_data.csv.gz).
    """
    import mlflow
    import pandas as pd

    path = artifacts_dir / TRAINING_DATA_FILE
    if not path.exists():
        log.warning("%s has no %s: the run gets no dataset input", artifacts_dir, TRAINING_DATA_FILE)
        return
    # every cell as text first (no NA guessing), then the contract's numbers as numbers
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    for feature in FEATURES:
        if feature.dtype != "str":
            frame[feature.name] = pd.to_numeric(frame[feature.name])
    from mlflow.data.pandas_dataset import from_pandas

    with warnings.catch_warnings():  # "the source can be interpreted in multiple ways": it is a name
        warnings.simplefilter("ignore", UserWarning)
        dataset = from_pandas(frame, source=f"{version}/{TRAINING_DATA_FILE}",
                              name=f"{version} training rows", targets=TARGET)
    mlflow.log_input(dataset, context="training")


PYFUNC_REQUIREMENTS = ("mlflow", "onnxruntime", "onnx", "scikit-learn", "pandas", "numpy", "joblib",
                       "pydantic-settings")


def _log_pyfunc(artifacts_dir: Path) -> Any:
    """Log the artifacts folder as an MLflow pyfunc (model/pyfunc.py) whose `predict` answers as the
    API does, with a signature inferred from the canary records' answers and those records as the
    input example. The code of `model/` and `core/` (Python files only) travels with the model, so
    MLflow's own loaders and `mlflow models serve` need nothing of this repository."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from model.contract import canary_records
    from model.predictor import Predictor
    from model.pyfunc import ARTIFACTS_KEY, ChurnModel, decisions_frame

    example = pd.DataFrame(canary_records(), columns=list(FEATURE_NAMES))
    example["total_charges"] = example["total_charges"].astype("float64")
    with warnings.catch_warnings():  # integer columns cannot be missing: the contract says so too
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(example, decisions_frame(Predictor(artifacts_dir), canary_records()))
    with tempfile.TemporaryDirectory(prefix="churn-pyfunc-code-") as folder:
        code = []
        for package in ("model", "core"):
            target = Path(folder) / package
            target.mkdir()
            for source in (REPO_ROOT / package).glob("*.py"):
                shutil.copy2(source, target / source.name)
            code.append(str(target))
        return mlflow.pyfunc.log_model(
            name="model", python_model=ChurnModel(), artifacts={ARTIFACTS_KEY: str(artifacts_dir)},
            signature=signature, input_example=example, code_paths=code,
            # explicit: inferring them runs the model in a subprocess (~40 s)
            pip_requirements=[f"{d}=={_installed(d)}" for d in PYFUNC_REQUIREMENTS],
        )


def log_gate_metrics(
    run_id: str, metrics: dict[str, float], settings: RegistrySettings | None = None,
) -> None:
    """Log the promotion gate's figures on a version's training run (the challenger's)."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client(settings).log_batch(run_id, metrics=[Metric(key, float(value), now, 0)
                                                for key, value in metrics.items()])


def gate_figures(decision: Any) -> dict[str, float]:
    """A gate decision (model.gate.GateDecision) as MLflow metrics: the metric for both models, the
    labelled rows, the verdict (1 promote, 0 not) and each segment's values."""
    figures: dict[str, float] = {"gate_rows": decision.rows, "gate_promote": int(decision.promote),
                                 "gate_enough_rows": int(decision.enough_rows)}
    if decision.champion is not None:
        figures[f"gate_champion_{decision.metric}"] = decision.champion
    if decision.challenger is not None:
        figures[f"gate_challenger_{decision.metric}"] = decision.challenger
    for segment in decision.segments:
        # MLflow metric names: letters, digits, _ - . / and spaces only
        name = "".join(c if c.isalnum() or c in "_-. /" else "_"
                       for c in f"{segment.segment}.{segment.value}")
        figures[f"gate_segment.{name}.champion_{decision.metric}"] = segment.champion
        figures[f"gate_segment.{name}.challenger_{decision.metric}"] = segment.challenger
        figures[f"gate_segment.{name}.rows"] = segment.rows
    return figures


def admit_registered(number: int, settings: RegistrySettings | None = None) -> RegisteredVersion:
    """Download version `number` into a temporary folder and run admission on it (model/admission.py);
    the version when admissible. Raises model.admission.AdmissionError saying why not."""
    from model.admission import AdmissionError, admit

    settings = settings or RegistrySettings()
    version = get_version(number, settings)
    with tempfile.TemporaryDirectory(prefix="churn-admission-") as folder:
        try:
            path = download_run(version.run_id, Path(folder) / f"v{number}", settings)
        except Exception as error:  # no artifacts under the run, or they cannot be fetched
            raise AdmissionError("unloadable", f"its artifacts could not be downloaded: "
                                                 f"{type(error).__name__}: {str(error)[:300]}") from error
        admit(path, version.model_version or None)  # registered by hand: no model_version tag
    return version


def is_unreachable(error: BaseException) -> bool:
    """True when `error` (or what caused it) is a connection failure or a timeout: the registry or
    its artifact store did not answer, as opposed to answering "no such thing"."""
    import requests

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, requests.exceptions.ConnectionError | requests.exceptions.Timeout | OSError) \
                and not isinstance(seen, FileNotFoundError):
            return True
        if "Max retries exceeded" in str(seen) or "timed out" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def apply_http_limits(settings: RegistrySettings) -> None:
    """Bound every MLflow HTTP call of this process: MLFLOW_HTTP_REQUEST_TIMEOUT seconds per request
    and MLFLOW_HTTP_REQUEST_MAX_RETRIES retries, from the settings (MLflow's defaults retry with
    backoff for minutes). MLflow reads these environment variables at each request."""
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.mlflow_http_request_timeout)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.mlflow_http_request_max_retries)


def _installed(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def get_version(number: int, settings: RegistrySettings | None = None) -> RegisteredVersion:
    settings = settings or RegistrySettings()
    return _version(client(settings).get_model_version(settings.mlflow_model_name, str(number)))


def list_versions(settings: RegistrySettings | None = None) -> list[RegisteredVersion]:
    """Every registered version of MLFLOW_MODEL_NAME, aliased or not, lowest number first (all
    pages of MLflow's search); [] when the model is not registered."""
    settings = settings or RegistrySettings()
    registry = client(settings)
    name = settings.mlflow_model_name.replace("'", "\\'")
    found: list[RegisteredVersion] = []
    token: str | None = None
    while True:
        page = registry.search_model_versions(f"name = '{name}'", page_token=token)
        found.extend(_version(mv) for mv in page)
        token = page.token
        if not token:
            return sorted(found, key=lambda version: version.number)


def read_run_metadata(run_id: str, settings: RegistrySettings | None = None) -> dict[str, Any]:
    """The metadata.json (model/train.py) in training run `run_id`'s artifacts folder, downloaded
    alone (not the model). Raises what MLflow raises when the run has no such file, ValueError when
    it is not JSON."""
    import mlflow

    settings = settings or RegistrySettings()
    with tempfile.TemporaryDirectory(prefix="churn-metadata-") as folder:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"{RUN_ARTIFACTS}/{METADATA_FILE}", dst_path=folder,
            tracking_uri=_tracking_uri(settings))
        metadata = json.loads(Path(path).read_text())
    if not isinstance(metadata, dict):
        raise ValueError(f"{METADATA_FILE} of run {run_id} is not a JSON object")
    return metadata


def version_by_alias(alias: str, settings: RegistrySettings | None = None) -> RegisteredVersion | None:
    """The version an alias points to; None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    settings = settings or RegistrySettings()
    try:
        return _version(client(settings).get_model_version_by_alias(settings.mlflow_model_name, alias))
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def set_alias(alias: str, number: int, settings: RegistrySettings | None = None) -> None:
    settings = settings or RegistrySettings()
    client(settings).set_registered_model_alias(settings.mlflow_model_name, alias, str(number))


def delete_alias(alias: str, settings: RegistrySettings | None = None) -> None:
    """Remove an alias (no error when it does not exist)."""
    settings = settings or RegistrySettings()
    if version_by_alias(alias, settings) is not None:
        client(settings).delete_registered_model_alias(settings.mlflow_model_name, alias)


def tag_version(number: int, tags: dict[str, str], settings: RegistrySettings | None = None) -> None:
    settings = settings or RegistrySettings()
    registry = client(settings)
    for key, value in tags.items():
        registry.set_model_version_tag(settings.mlflow_model_name, str(number), key, value)


def download_version(number: int, destination: Path, settings: RegistrySettings | None = None) -> Path:
    """Download a version's artifacts folder into `destination`; returns the folder Predictor loads.

    Written under a temporary name and renamed, so a crash never leaves a half-downloaded model
    where a loader would take it for a whole one.
    """
    settings = settings or RegistrySettings()
    return download_run(get_version(number, settings).run_id, destination / f"v{number}", settings)


def download_run(run_id: str, final: Path, settings: RegistrySettings | None = None) -> Path:
    """Download the artifacts folder of training run `run_id` to the folder `final` (kept when it
    already exists: a run's artifacts never change); returns `final`."""
    import mlflow

    settings = settings or RegistrySettings()
    destination = final.parent
    destination.mkdir(parents=True, exist_ok=True)
    if final.exists():
        return final
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=destination))
    try:
        mlflow.set_tracking_uri(_tracking_uri(settings))
        downloaded = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=RUN_ARTIFACTS, dst_path=str(staging),
            tracking_uri=settings.mlflow_tracking_uri,
        )
        os.replace(downloaded, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The MLflow model registry of the churn model.")
    sub = parser.add_subparsers(dest="command", required=True)
    register = sub.add_parser("register", help="log and register the local artifacts")
    register.add_argument("--artifacts", type=Path, default=ARTIFACTS_DIR)
    register.add_argument("--alias", choices=["auto", CHAMPION, CHALLENGER, "none"], default="auto")
    register.add_argument("--if-no-champion", action="store_true",
                          help="do nothing when a champion exists (what `make run` does)")
    sub.add_parser("show", help="print the champion and the challenger")
    args = parser.parse_args(argv)
    settings = RegistrySettings()
    if not settings.enabled:
        raise SystemExit("MLFLOW_TRACKING_URI is unset: there is no model registry to talk to")
    if args.command == "register":
        champion = version_by_alias(CHAMPION, settings)
        if args.if_no_champion and champion is not None:
            print(f"champion already registered: version {champion.number} ({champion.model_version})")
            return
        registered = log_training_run(args.artifacts, settings=settings,
                                      alias=None if args.alias == "none" else args.alias)
        assert registered is not None
        print(f"registered version {registered.number} ({registered.model_version}) "
              f"aliases: {', '.join(registered.aliases) or 'none'}")
    else:
        for alias in (CHAMPION, CHALLENGER):
            found = version_by_alias(alias, settings)
            print(f"{alias}: " + (f"version {found.number} ({found.model_version})" if found else "none"))


if __name__ == "__main__":
    main()
