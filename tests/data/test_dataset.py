"""Data tests: the committed CSV matches the feature contract."""

import pandas as pd
import pytest

from model.contract import FEATURE_NAMES, FEATURES, IDENTIFIER, TARGET
from model.data import load_dataset


@pytest.fixture(scope="module")
def dataset() -> pd.DataFrame:
    return load_dataset()


def test_shape_and_columns(dataset: pd.DataFrame) -> None:
    assert len(dataset) == 7043
    assert list(dataset.columns) == [IDENTIFIER, *FEATURE_NAMES, TARGET]
    assert dataset[IDENTIFIER].is_unique
    assert set(dataset[TARGET]) == {"Yes", "No"}


def test_values_within_contract(dataset: pd.DataFrame) -> None:
    for f in FEATURES:
        column = dataset[f.name].dropna()
        if f.allowed is not None:
            assert set(column) <= set(f.allowed), f.name
        if f.minimum is not None:
            assert column.min() >= f.minimum, f.name
        if f.maximum is not None:
            assert column.max() <= f.maximum, f.name


def test_missing_values_only_where_known(dataset: pd.DataFrame) -> None:
    missing = dataset.isna().sum()
    assert missing[missing > 0].to_dict() == {"total_charges": 11}
    # the 11 customers in their first month, who have not been billed yet
    assert set(dataset.loc[dataset["total_charges"].isna(), "tenure"]) == {0}


def test_total_charges_consistent_with_tenure(dataset: pd.DataFrame) -> None:
    billed = dataset.dropna(subset=["total_charges"])
    ratio = billed["total_charges"] / (billed["monthly_charges"] * billed["tenure"])
    assert ratio.min() > 0.68  # the contract's consistency rule (0.25) has a wide margin
