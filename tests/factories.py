"""Customer records for every test folder (api, db, webapp, dags, e2e): one factory module.

Two kinds of customer: made-up valid ones from the contract's form defaults (`customer_record`,
`customer_records`), and real ones from the committed dataset, either as JSON records the API
takes (`dataset_records`) or as the text cells a raw file holds (`dataset_rows`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from model.contract import FEATURE_NAMES, IDENTIFIER, TARGET, default_record
from model.data import DATASET_PATH


def customer_record(**changes: Any) -> dict[str, Any]:
    """A valid record (the contract's form defaults, no customer id) with some values changed."""
    return {**default_record(), **changes}


def customer_records(count: int, *, id_prefix: str | None = "C", **changes: Any) -> list[dict[str, Any]]:
    """`count` valid records with customer ids `<id_prefix>0`, `<id_prefix>1`, ... (None: no id).

    A change given as a function gets the record's index: `customer_records(3, tenure=lambda i: i)`.
    """
    return [
        customer_record(
            **({IDENTIFIER: f"{id_prefix}{i}"} if id_prefix is not None else {}),
            **{name: value(i) if callable(value) else value for name, value in changes.items()},
        )
        for i in range(count)
    ]


def dataset_rows(count: int, start: int = 0, *, label: bool = False) -> pd.DataFrame:
    """Customers `start` to `start + count - 1` of the dataset as a raw file holds them: text cells.

    Blank cells are NaN (pandas' default). The label column is dropped unless `label` is true
    (good_data files keep it); the index runs from 0.
    """
    frame = pd.read_csv(DATASET_PATH, dtype=str, skiprows=range(1, start + 1), nrows=count)
    return frame if label else frame.drop(columns=[TARGET])


def dataset_records(count: int, start: int = 0) -> list[dict[str, Any]]:
    """Customers of the dataset as JSON records: the id and the typed features, blanks as None."""
    frame = pd.read_csv(DATASET_PATH, skiprows=range(1, start + 1), nrows=count)
    frame = frame[[IDENTIFIER, *FEATURE_NAMES]].astype(object)
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]
