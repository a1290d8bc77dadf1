"""Data tests: the committed CSV matches the feature contract."""

import pandas as pd
import pytest

from model.contract import FEATURE_NAMES, FEATURES, FEATURES_BY_NAME, IDENTIFIER, TARGET
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


def test_the_ibm_export_read_through_its_aliases_is_the_dataset(dataset: pd.DataFrame) -> None:
    """tests/field_cases/ibm_telco_export_sample.csv, the public export as downloaded, read by
    core/reader.py through the contract's aliases, gives rows of data/telco_churn.csv, coding
    for coding (gender Female -> female 1, Yes/No flags -> 1/0, a blank TotalCharges -> empty)."""
    from pathlib import Path

    from core.reader import read_customer_file
    from model.contract import record_json_schema

    sample = Path(__file__).resolve().parents[1] / "field_cases" / "ibm_telco_export_sample.csv"
    table = read_customer_file(sample.read_bytes(), record_json_schema())
    columns = [*FEATURE_NAMES, TARGET]

    def canonical(values: list[object]) -> tuple[object, ...]:
        return tuple(
            None if pd.isna(v) or v is None else float(v) if f in ("monthly_charges", "total_charges")
            else int(v) if f in ("tenure",) or (f in FEATURES_BY_NAME and FEATURES_BY_NAME[f].dtype == "int")
            else v
            for f, v in zip(columns, values, strict=True)
        )

    known = {canonical(list(row)) for row in dataset[columns].itertuples(index=False)}
    read_rows = [canonical([row.cells[c] for c in columns]) for row in table.rows]
    assert len(read_rows) == 200
    assert [row for row in read_rows if row not in known] == []
