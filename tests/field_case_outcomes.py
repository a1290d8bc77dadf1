"""The correct outcome of each field case (tests/field_cases/README.md), shared by every path's tests.

One table, so that the webapp check, the ingestion DAG, the prediction job and the API are held
to the same answer for the same file: which customers are valid (their ids, in file order), which
rows are invalid and why (the row as a spreadsheet numbers it -> the columns at fault, None for
the whole row), or why the whole file is refused.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

FIELD_CASES_DIR = Path(__file__).resolve().parent / "field_cases"
IBM_SAMPLE = FIELD_CASES_DIR / "ibm_telco_export_sample.csv"


def _ibm_ids() -> tuple[str, ...]:
    with IBM_SAMPLE.open(newline="") as handle:
        return tuple(row["customerID"] for row in csv.DictReader(handle))


@dataclass(frozen=True)
class FieldCase:
    name: str
    valid_ids: tuple[str, ...] = ()
    invalid: dict[int, frozenset[str | None]] = field(default_factory=dict)
    refused: str | None = None  # the start of the reader's reason when the whole file is refused
    notes: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return FIELD_CASES_DIR / self.name


THREE = ("ZX-1001", "ZX-1002", "ZX-1003")
FIELD_CASES: tuple[FieldCase, ...] = (
    FieldCase("blank_lines_before_header.csv", THREE),
    FieldCase("cr_only_line_endings.csv", THREE),
    FieldCase("duplicate_column_name.csv", refused="names the column `tenure` twice, columns 6 and 21"),
    FieldCase("empty_trailing_column.csv", THREE, notes=("column 21 has no name and no value: ignored",)),
    FieldCase("extra_fields_on_first_row.csv", ("C05119", "C05725"), {2: frozenset({None})}),
    FieldCase("header_with_trailing_space.csv", THREE),
    FieldCase(
        "ibm_telco_export_sample.csv", _ibm_ids(),
        notes=(
            "the file was read as the public IBM Telco churn export: its column names and codings are "
            "known aliases",
        ),
    ),
    # ids are text: "NA" twice is the same customer twice (the first stays valid); "NA" in
    # total_charges is not a number
    FieldCase(
        "na_like_customer_ids.csv", ("NA", "None"),
        {4: frozenset({"customer_id"}), 5: frozenset({"total_charges"})},
    ),
    FieldCase(
        "semicolon_decimal_comma.csv", ("ZX-1001", "ZX-1002", "ZX-1003"),
        notes=("the file uses `;` as the delimiter", "decimal commas were read as decimal points (6 cells)"),
    ),
    FieldCase("total_charges_blank_space.csv", ("ZX-1001", "ZX-1002", "ZX-1004")),
    FieldCase(
        "trailing_delimiter_every_row.csv", THREE,
        notes=("every row ends with one `,` more than the header: that empty last field was ignored",),
    ),
)
FIELD_CASE_IDS = [case.name.removesuffix(".csv") for case in FIELD_CASES]
