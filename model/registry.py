"""The model registry (MLflow): training runs, registered versions, the champion / challenger aliases.

    python -m model.registry register [--artifacts model/artifacts] [--alias auto|champion|challenger|none]
    python -m model.registry show

Every trained model is an MLflow run (parameters, holdout metrics, the confusion matrix, the drift
baseline, the dataset's hash, and the whole artifacts folder under `artifacts/`: what
`model.predictor.Predictor` loads, ONNX file included when training wrote one) and a version
of the registered model `MLFLOW_MODEL_NAME`, whose tag `model_version` is the version string
stored with every prediction. Serving loads the version the alias `champion` points to; the
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.settings import RegistrySettings
from model.files import ARTIFACTS_DIR, CONFUSION_FILE, HYPERPARAMETERS, METADATA_FILE, MODEL_FILE, SEED

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
    """
    settings = settings or RegistrySettings()
    if not settings.enabled:
        return None
    import joblib
    import mlflow

    metadata = json.loads((artifacts_dir / METADATA_FILE).read_text())
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
        logged = mlflow.sklearn.log_model(
            joblib.load(artifacts_dir / MODEL_FILE), name="model", serialization_format="pickle",
            # explicit: inferring them runs the model in a subprocess (~40 s)
            pip_requirements=[f"scikit-learn=={_installed('scikit-learn')}"],
        )
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


def _installed(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def get_version(number: int, settings: RegistrySettings | None = None) -> RegisteredVersion:
    settings = settings or RegistrySettings()
    return _version(client(settings).get_model_version(settings.mlflow_model_name, str(number)))


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
    import mlflow

    settings = settings or RegistrySettings()
    version = get_version(number, settings)
    destination.mkdir(parents=True, exist_ok=True)
    final = destination / f"v{number}"
    if final.exists():
        return final
    staging = Path(tempfile.mkdtemp(prefix=f".v{number}-", dir=destination))
    try:
        mlflow.set_tracking_uri(_tracking_uri(settings))
        downloaded = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=RUN_ARTIFACTS, dst_path=str(staging),
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
