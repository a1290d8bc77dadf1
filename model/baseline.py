"""The training baseline for drift: what each feature looked like in the training data.

Numbers: mean, std, share of nulls, and ten quantile bins (edges and proportions).
Categories (text and 0/1 flags): the proportion of each allowed value.
Stored in the model's metadata, loaded into the database by `python -m db.manage load-baseline`,
and compared with serving data by PSI in SQL (see grafana/).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from model.contract import FEATURES

N_BINS = 10


def numeric_baseline(values: pd.Series) -> dict[str, Any]:
    present = values.dropna().to_numpy(dtype="float64")
    edges = np.unique(np.quantile(present, np.linspace(0, 1, N_BINS + 1)))
    # Outer edges open so that serving values outside the training range still land in a bin.
    inner = edges[1:-1]
    counts = np.bincount(np.searchsorted(inner, present, side="right"), minlength=len(inner) + 1)
    return {
        "kind": "numeric",
        "mean": float(present.mean()),
        "std": float(present.std(ddof=1)),
        "null_share": float(values.isna().mean()),
        "bin_edges": [float(e) for e in edges],
        "bin_proportions": [float(c) / len(present) for c in counts],
    }


def categorical_baseline(values: pd.Series, allowed: tuple[Any, ...]) -> dict[str, Any]:
    shares = values.value_counts(normalize=True)
    return {
        "kind": "categorical",
        "proportions": {str(v): float(shares.get(v, 0.0)) for v in allowed},
    }


def compute_baseline(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Baseline of every contract feature in `frame`."""
    return {
        f.name: (
            categorical_baseline(frame[f.name], f.allowed)
            if f.allowed is not None
            else numeric_baseline(frame[f.name])
        )
        for f in FEATURES
    }
