"""Train the churn pipeline and write its artifacts.

    python -m model.train [--data data/telco_churn.csv] [--out model/artifacts] [--alias auto]

Writes `model.joblib`, `model.onnx` (the same pipeline for ONNX Runtime, written only once it
scores the holdout like scikit-learn: `model/onnx_export.py`), `metadata.json` (version, date,
features, holdout metrics, decision threshold, training churn rate, drift baseline, dataset hash,
ONNX parity, monitoring reference, canary scores), `confusion_matrix.png` and
`training_data.csv.gz` (the training rows, logged to MLflow as the version's dataset), then
prints the holdout metrics.
With MLFLOW_TRACKING_URI set, the run is also logged to MLflow and registered as a model version
(model/registry.py; `--alias auto`: champion when there is none yet, else challenger).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import cross_val_predict, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from model.admission import canary_scores
from model.baseline import compute_baseline
from model.contract import (
    CATEGORICAL_FEATURES,
    FEATURE_NAMES,
    IDENTIFIER,
    NUMERIC_FEATURES,
    POSITIVE_LABEL,
    TARGET,
    record_json_schema,
)
from model.data import DATASET_PATH, load_dataset
from model.files import (
    ARTIFACTS_DIR,
    CONFUSION_FILE,
    HOLDOUT_SHARE,
    HYPERPARAMETERS,
    METADATA_FILE,
    MODEL_FILE,
    SEED,
    TRAINING_DATA_FILE,
)
from model.monitoring import monitoring_reference
from model.onnx_export import ONNX_FILE, export_onnx


def build_pipeline() -> Pipeline:
    """Preprocessing that ignores unseen categories, then a logistic regression."""
    preprocess = ColumnTransformer([
        (
            "categorical",
            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
            list(CATEGORICAL_FEATURES),
        ),
        (
            "numeric",
            Pipeline([
                ("impute", SimpleImputer(strategy="median")),
                ("scale", StandardScaler()),
            ]),
            list(NUMERIC_FEATURES),
        ),
    ])
    classifier = LogisticRegression(random_state=SEED, **HYPERPARAMETERS)
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The probability cut that maximises F1 (chosen on training folds, never on the holdout)."""
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def holdout_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = (scores >= threshold).astype(int)
    return {
        "roc_auc": round(float(roc_auc_score(y_true, scores)), 4),
        "f1": round(float(f1_score(y_true, predicted)), 4),
        "precision": round(float(precision_score(y_true, predicted)), 4),
        "recall": round(float(recall_score(y_true, predicted)), 4),
        "threshold": round(threshold, 4),
    }


def model_version(data_path: Path, extra_rows: pd.DataFrame | None = None) -> str:
    """Same data, contract and pipeline -> same version; a change to any of them -> a new one.

    The contract enters through its JSON schema (names, types, allowed values, ranges) and the
    pipeline through its printed definition (steps and every parameter); labelled serving rows
    added by retraining through their hash.
    """
    digest = hashlib.sha256(data_path.read_bytes())
    if extra_rows is not None and len(extra_rows):
        digest.update(dataset_hash(extra_rows).encode())
    digest.update(json.dumps(
        [record_json_schema(), repr(build_pipeline().get_params(deep=True)), HYPERPARAMETERS, SEED],
        sort_keys=True, default=str,
    ).encode())
    return f"churn-lr-{digest.hexdigest()[:10]}"


def dataset_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's rows (values and order), independent of how it was read."""
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()


HOLDOUT_KEY_LENGTH = 16  # hex characters of a row key kept in metadata.json


def row_keys(frame: pd.DataFrame) -> pd.Series:
    """Each row's identity as the holdout was drawn on it: the start of the SHA-256 of its feature
    values written canonically (numbers as `%.10g`, empty for missing, text as is), so the same
    customer read from the CSV or from stored predictions gets the same key whatever its
    customer_id looks like. A Series of hex strings (HOLDOUT_KEY_LENGTH), aligned on `frame`."""
    parts = []
    for name in FEATURE_NAMES:
        column = frame[name]
        if name in NUMERIC_FEATURES:
            numbers = pd.to_numeric(column, errors="coerce")
            parts.append(numbers.map(lambda v: "" if pd.isna(v) else format(float(v), ".10g")))
        else:
            parts.append(column.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v))
                                    else str(v)))
    text = pd.concat(parts, axis=1).astype(str).agg("\x1f".join, axis=1)
    return text.map(lambda row: hashlib.sha256(row.encode()).hexdigest()[:HOLDOUT_KEY_LENGTH])


def exclude_holdout(extra_rows: pd.DataFrame, holdout: pd.DataFrame) -> pd.DataFrame:
    """The rows of `extra_rows` that are no holdout customer: neither the same customer_id nor the
    same feature values (`row_keys`) as a row of `holdout`, so a holdout customer served again
    under another id (a prefixed one, say) is never trained on."""
    same_id = extra_rows[IDENTIFIER].astype(str).isin(set(holdout[IDENTIFIER].astype(str)))
    same_row = row_keys(extra_rows).isin(set(row_keys(holdout)))
    return extra_rows[~(same_id | same_row)]


def save_confusion_matrix(matrix: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center")
    ax.set_xticks([0, 1], ["stays", "churns"])
    ax.set_yticks([0, 1], ["stays", "churns"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Holdout confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(
    data_path: Path = DATASET_PATH, out_dir: Path = ARTIFACTS_DIR, extra_rows: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Train, evaluate on a stratified holdout, write the artifacts; returns the metadata.

    `extra_rows` (retraining): labelled serving rows, the contract's features plus `customer_id`
    and `churn` ("Yes"/"No"), added to the original training split. The holdout stays the
    original one (same data, same seed), and a serving row of a holdout customer, by id or by
    feature values (`exclude_holdout`), is left out of training, so holdout metrics stay
    comparable between versions and are measured on customers never trained on. The holdout's
    identity (customer ids and row keys) is recorded in the metadata.
    """
    frame = load_dataset(data_path)
    y = (frame[TARGET] == POSITIVE_LABEL).astype(int).to_numpy()
    X = frame[[*FEATURE_NAMES, IDENTIFIER]]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=HOLDOUT_SHARE, stratify=y, random_state=SEED,
    )
    added = excluded = 0
    if extra_rows is not None and len(extra_rows):
        kept = exclude_holdout(extra_rows, X_test)
        added, excluded = len(kept), len(extra_rows) - len(kept)
        X_train = pd.concat([X_train, kept[[*FEATURE_NAMES, IDENTIFIER]]], ignore_index=True)
        y_train = np.concatenate([y_train, (kept[TARGET] == POSITIVE_LABEL).astype(int).to_numpy()])
    holdout_ids, holdout_keys = X_test[IDENTIFIER].astype(str).tolist(), row_keys(X_test).tolist()
    X_train, X_test = X_train[list(FEATURE_NAMES)], X_test[list(FEATURE_NAMES)]
    pipeline = build_pipeline()
    oof = cross_val_predict(pipeline, X_train, y_train, cv=5, method="predict_proba")[:, 1]
    threshold = best_f1_threshold(y_train, oof)
    pipeline.fit(X_train, y_train)
    scores = pipeline.predict_proba(X_test)[:, 1]
    metrics = holdout_metrics(y_test, scores, threshold)
    # parity with scikit-learn on the holdout is checked before anything is written
    parity = export_onnx(pipeline, X_test, threshold, out_dir / ONNX_FILE)

    out_dir.mkdir(parents=True, exist_ok=True)
    baseline = compute_baseline(X_train)
    metadata = {
        "model_version": model_version(data_path, extra_rows),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "features": list(FEATURE_NAMES),
        "metrics": metrics,
        "threshold": threshold,
        "training_rows": len(X_train),
        "serving_rows_added": added,
        "serving_rows_excluded": excluded,  # serving rows of holdout customers, left out
        "dataset_sha256": dataset_hash(pd.concat(
            [X_train.reset_index(drop=True), pd.Series(y_train, name=TARGET)], axis=1)),
        "holdout_rows": len(X_test),
        # who the holdout is: never trained on, by id or by feature values (exclude_holdout)
        "holdout_customer_ids": holdout_ids,
        "holdout_row_keys": holdout_keys,
        "training_churn_rate": round(float(y_train.mean()), 4),
        "baseline": baseline,
        "onnx": parity.as_metadata(),
        # drift references per segment, logit weights and the CBPE calibration (model/monitoring.py)
        "monitoring": monitoring_reference(X_train, y_train, oof, pipeline, baseline),
        # what the contract's canary records score: a version is served only if it still does
        "canary": {"probabilities": canary_scores(out_dir / ONNX_FILE)},
    }
    joblib.dump(pipeline, out_dir / MODEL_FILE)
    # the training rows (features and target), logged with the registered version as its dataset
    X_train.assign(**{TARGET: np.where(y_train == 1, POSITIVE_LABEL, "No")}).to_csv(
        out_dir / TRAINING_DATA_FILE, index=False)
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    save_confusion_matrix(
        confusion_matrix(y_test, (scores >= threshold).astype(int)), out_dir / CONFUSION_FILE,
    )
    return metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the churn model.")
    parser.add_argument("--data", type=Path, default=DATASET_PATH)
    parser.add_argument("--out", type=Path, default=ARTIFACTS_DIR)
    parser.add_argument("--alias", choices=["auto", "champion", "challenger", "none"], default="auto",
                        help="registry alias of the new version (only with MLFLOW_TRACKING_URI set)")
    args = parser.parse_args(argv)
    metadata = train(args.data, args.out)
    print(f"model {metadata['model_version']} written to {args.out}")
    print("holdout metrics: " + ", ".join(f"{k}={v}" for k, v in metadata["metrics"].items()))
    from model.registry import log_training_run  # imports MLflow: only here, when training ends

    registered = log_training_run(args.out, alias=None if args.alias == "none" else args.alias)
    if registered is not None:
        print(f"registered version {registered.number}, aliases: {', '.join(registered.aliases) or 'none'}")


if __name__ == "__main__":
    main()
