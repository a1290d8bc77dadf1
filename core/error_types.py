"""The named kinds of bad data: what the error injector produces and what validation reports.

One vocabulary, in core/ because the webapp shares it too: `scripts/inject_errors.py`, the
ingestion validation (jobs), the webapp's CSV check, the statistics tables and the
dashboards all use these names.
"""

from enum import StrEnum


class ErrorType(StrEnum):
    MISSING_COLUMN = "missing_column"  # a required column is absent from the file
    MISSING_VALUE = "missing_value"  # a null in a required, non-nullable column
    UNKNOWN_CATEGORY = "unknown_category"  # a value outside the contract's allowed set
    OUT_OF_RANGE = "out_of_range"  # a number below the minimum or above the maximum
    WRONG_TYPE = "wrong_type"  # text in a numeric column, or a fractional integer
    DUPLICATE_ROW = "duplicate_row"  # the same customer twice in one file
    UNEXPECTED_COLUMN = "unexpected_column"  # a column the contract does not know
    INCONSISTENT_VALUES = "inconsistent_values"  # fields valid alone but not together
    MALFORMED_ROW = "malformed_row"  # a row with more or fewer fields than the header
    UNREADABLE_FILE = "unreadable_file"  # not a CSV: binary, wrong encoding or delimiter
    EMPTY_FILE = "empty_file"  # no bytes at all, or a header with no rows
