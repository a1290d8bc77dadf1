"""What a trained model is made of on disk, and the training recipe's fixed constants.

One module of its own so that training (`model.train`), serving (`model.predictor`) and the
registry (`model.registry`) name the same files without importing one another.
"""

from __future__ import annotations

from core.settings import REPO_ROOT

ARTIFACTS_DIR = REPO_ROOT / "model" / "artifacts"  # where `python -m model.train` writes
MODEL_FILE = "model.joblib"  # the fitted scikit-learn pipeline
METADATA_FILE = "metadata.json"  # version, threshold, metrics, baseline, calibration
CONFUSION_FILE = "confusion_matrix.png"  # the holdout confusion matrix, for people
TRAINING_DATA_FILE = "training_data.csv.gz"  # the training rows: features and target
SEED = 42  # every random choice of training (split, model)
HOLDOUT_SHARE = 0.2  # share of the dataset kept out of training for the holdout metrics
HYPERPARAMETERS = {"C": 1.0, "max_iter": 2000}  # LogisticRegression's
