"""Loading the source dataset and turning records into model frames."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from model.contract import FEATURE_NAMES, FEATURES, IDENTIFIER, TARGET

DATASET_PATH = Path(__file__).resolve().parent.parent / "data" / "telco_churn.csv"

PANDAS_DTYPES = {"str": "str", "int": "int64", "float": "float64"}


def load_dataset(path: Path = DATASET_PATH) -> pd.DataFrame:
    """The committed dataset with the contract's dtypes."""
    dtypes = {f.name: PANDAS_DTYPES[f.dtype] for f in FEATURES}
    return pd.read_csv(path, dtype={**dtypes, IDENTIFIER: "str", TARGET: "str"})


def records_to_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Contract-valid records to the frame the pipeline expects (feature columns, in order).

    Built column by column from plain lists: much faster than pd.DataFrame(list_of_dicts) on
    large batches, and the dtypes are the contract's, not guessed.
    """
    records = list(records)
    columns = {}
    for f in FEATURES:
        values = [r.get(f.name) for r in records]
        if f.dtype == "float":
            columns[f.name] = pd.array(
                [float("nan") if v is None else v for v in values], dtype="float64",
            )
        elif f.dtype == "int":
            columns[f.name] = pd.array(values, dtype="int64")
        else:
            columns[f.name] = pd.array(values, dtype="str")
    return pd.DataFrame(columns, columns=list(FEATURE_NAMES))
