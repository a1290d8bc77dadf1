"""The one typed reading of a customer file's cells: text -> number, 0/1 flag, category, or empty.

What a cell may hold comes from its column's JSON schema property (`type`, `enum`, `minimum`,
`maximum`, `maxLength`, a `null` type for an optional value), the schema that
`model.contract.record_json_schema()` builds from the feature contract and the API publishes at
`GET /model`. Every path that turns text into values reads it here: the webapp's upload check,
the ingestion validation (its type check; Great Expectations then checks the values), the
scheduled prediction job, and the contract itself (`Feature.check_value` applies `check_value`).

Rules:
- Empty (None, or white space only) is None: missing when the column is not nullable.
- A number column reads the text with pandas' parser (`pd.to_numeric`) after removing surrounding
  white space: `12`, `+12`, `12.0`, `1e3`; not `1,5`, `1_000`, `$12`. `nan` and infinities are
  refused ("expected a finite number"). An integer column refuses a fraction (`12.5`) and reads
  `12.0` as 12.
- Text columns keep the text as written.

A column is read at once (`type_column`, vectorised: what the jobs use on chunks of rows); one
cell (`read_cell`) is a column of one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

_NAN_TEXTS = frozenset({"nan", "+nan", "-nan"})


def json_types(prop: Mapping[str, Any]) -> tuple[str, bool]:
    """The JSON type of a schema property and whether null is allowed: ('integer', False)."""
    declared = prop.get("type", "string")
    types = [declared] if isinstance(declared, str) else list(declared)
    nullable = "null" in types
    concrete = [t for t in types if t != "null"]
    return (concrete[0] if concrete else "string"), nullable


@dataclass
class TypedColumn:
    """A column's cells as typed values: int, float, str, or None (empty, or not readable).

    `problems` maps the position of each cell whose text is not of the column's type to why
    (those cells are None in `values`); `numbers` is the column as float64 (NaN: empty or not
    a number) for a number column, None for a text column.
    """

    json_type: str
    texts: Sequence[str | None]
    problems: dict[int, str] = field(default_factory=dict)
    numbers: np.ndarray | None = None

    @cached_property
    def values(self) -> list[Any]:
        """The typed values (Python int, float, str or None), one per cell."""
        if self.numbers is None:  # the blanks are looked for among the column's distinct texts
            blanks = {t for t in set(self.texts) if t is None or not t.strip()}
            return [None if t in blanks else t for t in self.texts] if blanks else list(self.texts)
        missing = np.isnan(self.numbers)
        empty = np.flatnonzero(missing).tolist()
        if self.json_type == "integer" and not (np.abs(self.numbers[~missing]) < 2**53).all():
            # beyond float64's exact integers: int() of each, as written
            return [None if math.isnan(v) else int(v) for v in self.numbers.tolist()]
        numbers = self.numbers
        if self.json_type == "integer":
            numbers = np.where(missing, 0, numbers).astype(np.int64)
        values: list[Any] = numbers.tolist()
        for position in empty:
            values[position] = None
        return values


def type_column(texts: Sequence[str | None], prop: Mapping[str, Any]) -> TypedColumn:
    """Read a column of cell texts as its JSON type (module docstring); constraints not checked."""
    json_type, _nullable = json_types(prop)
    if json_type not in ("number", "integer"):
        return TypedColumn(json_type, texts)
    text = pd.Series(list(texts), dtype=object)
    # pandas' parser skips surrounding white space itself: no copy of the column is stripped
    numbers = pd.to_numeric(text, errors="coerce").astype("float64").to_numpy(copy=True)
    finite = np.isfinite(numbers)
    problems: dict[int, str] = {}
    for position in np.flatnonzero(~finite).tolist():
        written = texts[position]
        if written is None or (isinstance(written, float) and math.isnan(written)) or not written.strip():
            continue  # empty
        if np.isinf(numbers[position]) or written.strip().lower() in _NAN_TEXTS:
            problems[int(position)] = f"expected a finite number, got {written!r}"
        else:
            expected = "an integer" if json_type == "integer" else "a number"
            problems[int(position)] = f"expected {expected}, got {written!r}"
    numbers[~finite] = np.nan
    if json_type == "integer":
        fractions = np.flatnonzero(finite & (np.mod(numbers, 1) != 0))
        for position in fractions.tolist():
            problems[position] = f"expected an integer, got {texts[position]!r}"
        numbers[fractions] = np.nan
    return TypedColumn(json_type, texts, problems, numbers)


def check_value(value: Any, prop: Mapping[str, Any]) -> str | None:
    """Why a typed value breaks its property's constraints (null, enum, range, length), or None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None if json_types(prop)[1] else "missing value"
    allowed = prop.get("enum")
    if allowed is not None and value not in allowed:
        return f"{value!r} is not one of {list(allowed)}"
    if "minimum" in prop and value < prop["minimum"]:
        return f"{value!r} is below the minimum {prop['minimum']:g}"
    if "maximum" in prop and value > prop["maximum"]:
        return f"{value!r} is above the maximum {prop['maximum']:g}"
    max_length = prop.get("maxLength")
    if max_length is not None and isinstance(value, str) and len(value) > max_length:
        return f"longer than {max_length} characters"
    return None


def read_cell(text: str | None, prop: Mapping[str, Any]) -> tuple[Any, str | None]:
    """One cell's typed value and why it breaks the property (None when it is valid).

    The column rules of `type_column` on a column of one, then `check_value`.
    """
    typed = type_column([text], prop)
    if typed.problems:
        return None, typed.problems[0]
    value = typed.values[0]
    reason = check_value(value, prop)
    return (None, reason) if reason else (value, None)
