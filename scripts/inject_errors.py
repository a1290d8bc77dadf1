"""Make raw files dirty, reproducibly: one function per kind of fault a real feed has.

    python scripts/inject_errors.py RAW_DATA_DIR --share 0.3 --seed S [--row-share 0.1] [--types ...]

A share of the CSV files in RAW_DATA_DIR (`--share`) each receives one error type (the types are
dealt in a shuffled round, so a handful of files already shows every kind); row-level faults touch
a share of that file's rows (`--row-share`). The same seed on the same files gives the same bytes.
Each changed file is rewritten atomically and one line per file says what changed where.

Module use: `INJECTORS` maps every `core.error_types.ErrorType` to its function. Row-level
functions take a DataFrame (typed, or text cells as read from a raw file), a numpy Generator and
the row positions to touch, and return a new frame plus an `Injection` saying exactly which rows,
columns and cells changed; the input frame is never modified. The file-level faults
(UNREADABLE_FILE, EMPTY_FILE) take and return the file's bytes instead (`FILE_LEVEL`), and so
does MALFORMED_ROW, on chosen rows (a frame cannot hold a row with a field too many).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import html
import io
import math
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.error_types import ErrorType
from core.files import list_visible_files, write_atomic
from model.contract import FEATURES, FEATURES_BY_NAME, MIN_TOTAL_TO_EXPECTED_RATIO, REQUIRED_COLUMNS
from scripts.split_dataset import OneLineArgumentParser, UsageError

Cell = tuple[int, str]

# Columns a feed might start sending without notice, with the values it would send.
EXTRA_COLUMNS: dict[str, tuple[str, ...]] = {
    "region": ("North", "South", "East", "West"),
    "signup_channel": ("web", "store", "phone"),
    "loaded_at": ("2026-01-05T02:00:00Z", "2026-01-05T02:00:01Z"),
}


@dataclass(frozen=True)
class Injection:
    """What one injector changed. Rows are positions in the returned data (0 = first data row).

    `cells` lists exactly the (row, column) cells rewritten by a cell-level fault; structural
    faults (a column added or removed, rows appended, a whole file spoiled) leave it empty and
    name the affected rows and columns instead.
    """

    error_type: ErrorType
    rows: tuple[int, ...]
    columns: tuple[str, ...]
    detail: str
    cells: tuple[Cell, ...] = ()

    def describe(self, limit: int = 8) -> str:
        return (
            f"{self.error_type}: {self.detail}; {len(self.rows)} rows [{_preview(self.rows, limit)}]; "
            f"columns {_preview(self.columns, limit) or '-'}"
        )


def _preview(items: Sequence[Any], limit: int) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(str(item) for item in items[:limit]) + more


FrameInjector = Callable[[pd.DataFrame, np.random.Generator, Sequence[int]], tuple[pd.DataFrame, Injection]]
FileInjector = Callable[[bytes, np.random.Generator, Sequence[int]], tuple[bytes, Injection]]


# --- row-level faults: a DataFrame in, a new DataFrame out -------------------------------------


def missing_column(
    frame: pd.DataFrame, rng: np.random.Generator, rows: Sequence[int],
) -> tuple[pd.DataFrame, Injection]:
    """A required column is absent: an upstream export was edited and a column dropped.

    The whole column goes, so every row is affected whatever `rows` says.
    """
    column = _pick(rng, [c for c in REQUIRED_COLUMNS if c in frame.columns])
    return frame.drop(columns=[column]), Injection(
        ErrorType.MISSING_COLUMN, tuple(range(len(frame))), (column,), f"column {column} removed",
    )


def missing_value(
    frame: pd.DataFrame, rng: np.random.Generator, rows: Sequence[int],
) -> tuple[pd.DataFrame, Injection]:
    """Empty cells in required, non-nullable columns: a form saved with a field left blank."""
    candidates = [f.name for f in FEATURES if f.required and not f.nullable and f.name in frame.columns]
    cells = {(row, _pick(rng, candidates)): None for row in rows}
    return _rewrite(frame, cells, ErrorType.MISSING_VALUE, "value emptied")


def unknown_category(
    frame: pd.DataFrame, rng: np.random.Generator, rows: Sequence[int],
) -> tuple[pd.DataFrame, Injection]:
    """A category outside the contract's set: a source system renamed or mistyped a label
    ("DSL" -> "dsl", "Month-to-month" -> "MONTH-TO-MONTH")."""
    candidates = [
        f.name for f in FEATURES if f.dtype == "str" and f.allowed and f.name in frame.columns
    ]
    cells = {}
    for row in rows:
        column = _pick(rng, candidates)
        allowed = FEATURES_BY_NAME[column].allowed or ()
        cells[(row, column)] = _misspelled(frame[column].iloc[row], allowed, rng)
    return _rewrite(frame, cells, ErrorType.UNKNOWN_CATEGORY, "category outside the allowed set")


def out_of_range(
    frame: pd.DataFrame, rng: np.random.Generator, rows: Sequence[int],
) -> tuple[pd.DataFrame, Injection]:
    """A number outside the contract's range: a sign flipped by a faulty subtraction (negative
    tenure) or a decimal point shifted one place (monthly charges x10, above the maximum).

    A row whose monthly charges x10 would still be in range gets the negative tenure instead.
    """
    cells: dict[Cell, Any] = {}
    maximum = FEATURES_BY_NAME["monthly_charges"].maximum
    assert maximum is not None  # the contract bounds monthly charges
    for row in rows:
        monthly = _as_number(frame["monthly_charges"].iloc[row]) if "monthly_charges" in frame else None
        if rng.random() < 0.5 and monthly is not None and monthly * 10 > maximum:
            shifted = round(monthly * 10, 2)
            cells[(row, "monthly_charges")] = _like(frame["monthly_charges"].iloc[row], shifted)
        else:
            tenure = _as_number(frame["tenure"].iloc[row]) or 0
            cells[(row, "tenure")] = _like(frame["tenure"].iloc[row], -max(int(tenure), 1))
    return _rewrite(frame, cells, ErrorType.OUT_OF_RANGE, "negative tenure or monthly charges x10")


def wrong_type(
    frame: pd.DataFrame, rng: np.random.Generator, rows: Sequence[int],
) -> tuple[pd.DataFrame, Injection]:
    """Text in a numeric column: a spreadsheet export with units and currency signs
    ("12 months", "$29.85") or Yes/No where the contract has 0/1 flags."""
    candidates = [f.name for f in FEATURES if f.dtype != "str" and f.name in frame.columns]
    cells = {}
    for row in rows:
        column = _pick(rng, candidates)
        cells[(row, column)] = _as_text_with_unit(column, frame[column].iloc[row])
    return _rewrite(frame, cells, ErrorType.WRONG_TYPE, "text in a numeric column")


def duplicate_row(
    frame: pd.DataFrame, rng: np.random.Generator, rows: Sequence[int],
) -> tuple[pd.DataFrame, Injection]:
    """The same customer twice in one file: an export retried after a timeout appended rows again.

    Exact copies of `rows` are appended at the end; the injection names the copies' positions.
    """
    copies = frame.iloc[list(rows)]
    result = pd.concat([frame, copies], ignore_index=True)
    appended = tuple(range(len(frame), len(result)))
    return result, Injection(
        ErrorType.DUPLICATE_ROW, appended, tuple(frame.columns),
        f"copies of rows {list(rows)[:8]}{' ...' if len(rows) > 8 else ''} appended",
    )


def unexpected_column(
    frame: pd.DataFrame, rng: np.random.Generator, rows: Sequence[int],
) -> tuple[pd.DataFrame, Injection]:
    """A column the contract does not know: the source system added a field to its export.

    The column is inserted at a random position with a value in every row, whatever `rows` says.
    """
    column = _pick(rng, [name for name in EXTRA_COLUMNS if name not in frame.columns])
    result = frame.copy()
    position = int(rng.integers(0, len(frame.columns) + 1))
    result.insert(position, column, rng.choice(EXTRA_COLUMNS[column], size=len(frame)).astype(object))
    return result, Injection(
        ErrorType.UNEXPECTED_COLUMN, tuple(range(len(frame))), (column,),
        f"column {column} added at position {position}",
    )


def inconsistent_values(
    frame: pd.DataFrame, rng: np.random.Generator, rows: Sequence[int],
) -> tuple[pd.DataFrame, Injection]:
    """Total charges far below monthly charges x tenure: a billing system reset its running total
    (each value valid alone, the three together impossible).

    The new total is 2% to 20% of monthly x tenure, under the contract's
    MIN_TOTAL_TO_EXPECTED_RATIO; rows with no tenure (any total fits them) are left alone.
    """
    ratio_ceiling = min(0.2, MIN_TOTAL_TO_EXPECTED_RATIO * 0.8)
    cells: dict[Cell, Any] = {}
    for row in rows:
        monthly = _as_number(frame["monthly_charges"].iloc[row])
        tenure = _as_number(frame["tenure"].iloc[row])
        if not monthly or not tenure or monthly <= 0 or tenure <= 0:
            continue
        total = round(monthly * tenure * rng.uniform(0.02, ratio_ceiling), 2)
        cells[(row, "total_charges")] = _like(frame["total_charges"].iloc[row], max(total, 0.01))
    return _rewrite(frame, cells, ErrorType.INCONSISTENT_VALUES, "total charges far below monthly x tenure")


# --- file-level faults: bytes in, bytes out -----------------------------------------------------


def unreadable_file(
    content: bytes, rng: np.random.Generator, rows: Sequence[int],
) -> tuple[bytes, Injection]:
    """Not CSV text at all: a gzip archive saved under a .csv name, an Excel workbook (.xlsx, a
    zip) renamed to .csv, a web page saved as .csv, or UTF-16 text without a byte-order mark.

    (A `;` delimiter or UTF-16 with a BOM are read by core/reader.py, so they are not faults.)
    """
    variant = _pick(rng, list(_UNREADABLE_VARIANTS))
    return _UNREADABLE_VARIANTS[variant](content), _whole_file(ErrorType.UNREADABLE_FILE, content, variant)


def _as_workbook(content: bytes) -> bytes:
    """The content inside a zip laid out like an .xlsx (fixed timestamps: the same bytes each time)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in (("[Content_Types].xml", b"<Types/>"), ("xl/workbook.xml", b"<workbook/>"),
                           ("xl/worksheets/sheet1.csv", content)):
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def _as_html_page(content: bytes) -> bytes:
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>\n"
        for row in csv.reader(io.StringIO(content.decode("utf-8")))
    )
    return f"<!DOCTYPE html>\n<html><body><table>\n{rows}</table></body></html>\n".encode()


_UNREADABLE_VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    # mtime=0: the same input gives the same bytes
    "gzip-compressed bytes": lambda content: gzip.compress(content, mtime=0),
    "an Excel workbook": _as_workbook,
    "an HTML page": _as_html_page,
    "UTF-16 without a byte-order mark": lambda content: content.decode("utf-8").encode("utf-16-le"),
}


def malformed_row(
    content: bytes, rng: np.random.Generator, rows: Sequence[int],
) -> tuple[bytes, Injection]:
    """Rows whose field count differs from the header's: a value with an unquoted delimiter
    inside (one field too many) or a line cut short by a truncated export (one field too few)."""
    lines = content.decode("utf-8").split("\n")
    for row in rows:
        position = row + 1  # the header is line 0
        if rng.random() < 0.5:
            lines[position] += ",extra"
        else:
            lines[position] = lines[position].rsplit(",", 1)[0]
    return "\n".join(lines).encode("utf-8"), Injection(
        ErrorType.MALFORMED_ROW, tuple(rows), (), "one field added to or cut from the row",
    )


def empty_file(
    content: bytes, rng: np.random.Generator, rows: Sequence[int],
) -> tuple[bytes, Injection]:
    """No data: a transfer interrupted before the first byte (zero bytes) or an export of an
    empty query (the header line only)."""
    if rng.random() < 0.5:
        return b"", _whole_file(ErrorType.EMPTY_FILE, content, "zero bytes")
    header = content.split(b"\n", 1)[0] + b"\n"
    return header, _whole_file(ErrorType.EMPTY_FILE, content, "header line only")


FRAME_INJECTORS: dict[ErrorType, FrameInjector] = {
    ErrorType.MISSING_COLUMN: missing_column,
    ErrorType.MISSING_VALUE: missing_value,
    ErrorType.UNKNOWN_CATEGORY: unknown_category,
    ErrorType.OUT_OF_RANGE: out_of_range,
    ErrorType.WRONG_TYPE: wrong_type,
    ErrorType.DUPLICATE_ROW: duplicate_row,
    ErrorType.UNEXPECTED_COLUMN: unexpected_column,
    ErrorType.INCONSISTENT_VALUES: inconsistent_values,
}
FILE_INJECTORS: dict[ErrorType, FileInjector] = {
    ErrorType.UNREADABLE_FILE: unreadable_file,
    ErrorType.EMPTY_FILE: empty_file,
    ErrorType.MALFORMED_ROW: malformed_row,
}
# file injectors that spoil chosen rows (the others spoil the whole file)
ROW_FILE_INJECTORS = frozenset({ErrorType.MALFORMED_ROW})
FILE_LEVEL = frozenset(FILE_INJECTORS) - ROW_FILE_INJECTORS
INJECTORS: dict[ErrorType, FrameInjector | FileInjector] = {**FRAME_INJECTORS, **FILE_INJECTORS}
assert set(INJECTORS) == set(ErrorType), "every error type needs an injector"


# --- helpers of the injectors -------------------------------------------------------------------


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    if not options:
        raise ValueError("no column of the contract left to spoil in this frame")
    return options[int(rng.integers(len(options)))]


def _rewrite(
    frame: pd.DataFrame, cells: dict[Cell, Any], error_type: ErrorType, detail: str,
) -> tuple[pd.DataFrame, Injection]:
    """A copy of frame with the cells set; touched columns become object so any value fits."""
    result = frame.copy()
    for column in sorted({c for _, c in cells}):
        result[column] = result[column].astype(object)
    for (row, column), value in cells.items():
        result.iloc[row, result.columns.get_loc(column)] = value
    ordered = tuple(sorted(cells))
    touched = {column for _, column in ordered}
    return result, Injection(
        error_type,
        rows=tuple(sorted({row for row, _ in ordered})),
        columns=tuple(c for c in frame.columns if c in touched),
        detail=detail,
        cells=ordered,
    )


def _whole_file(error_type: ErrorType, content: bytes, detail: str) -> Injection:
    lines = content.decode("utf-8", errors="replace").splitlines()
    columns = tuple(next(csv.reader(lines[:1]), []))
    return Injection(error_type, tuple(range(max(len(lines) - 1, 0))), columns, detail)


def _as_number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _like(original: Any, number: float) -> Any:
    """The number in the original cell's form: text in a raw file's frame, a number in a typed one."""
    if not isinstance(original, str):
        return number
    return str(int(number)) if float(number).is_integer() and "." not in original else str(number)


def _misspelled(value: Any, allowed: tuple[Any, ...], rng: np.random.Generator) -> str:
    text = str(value)
    variants = [text.lower(), text.upper(), text.replace(" ", "_"), text.replace("-", " ")]
    fresh = [v for v in dict.fromkeys(variants) if v not in allowed and v != text]
    return _pick(rng, fresh) if fresh else "Unknown"


def _as_text_with_unit(column: str, value: Any) -> str:
    number = _as_number(value)
    if number is None:
        return "unknown"
    if FEATURES_BY_NAME[column].allowed == (0, 1):
        return "Yes" if number == 1 else "No"
    if column == "tenure":
        return f"{int(number)} months"
    return f"${number:,.2f}"


# --- files: choose, spoil, rewrite --------------------------------------------------------------


@dataclass(frozen=True)
class FileInjection:
    """The outcome for one file: the injection, or why the file was left as it was."""

    file: Path
    injection: Injection | None
    skipped: str = ""

    def describe(self) -> str:
        what = self.injection.describe() if self.injection else f"skipped, {self.skipped}"
        return f"{self.file.name}: {what}"


def read_raw_frame(content: bytes) -> pd.DataFrame:
    """A raw file's cells exactly as written (text, empty cells as ""), so untouched cells keep
    their bytes when the frame is written back."""
    return pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False)


def frame_to_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def choose_rows(n_rows: int, row_share: float, rng: np.random.Generator) -> list[int]:
    """A sorted share of the row positions, at least one when there are rows."""
    if n_rows == 0:
        return []
    count = min(n_rows, max(1, round(n_rows * row_share)))
    return sorted(int(r) for r in rng.choice(n_rows, size=count, replace=False))


def inject_into_content(
    content: bytes, error_type: ErrorType, rng: np.random.Generator, row_share: float,
) -> tuple[bytes, Injection]:
    """One error type applied to one file's bytes (row-level types on a share of its rows)."""
    frame = read_raw_frame(content)
    if error_type in FILE_INJECTORS:
        rows = choose_rows(len(frame), row_share, rng) if error_type in ROW_FILE_INJECTORS else []
        return FILE_INJECTORS[error_type](content, rng, rows)
    changed, injection = FRAME_INJECTORS[error_type](frame, rng, choose_rows(len(frame), row_share, rng))
    return frame_to_bytes(changed), injection


def plan_injections(
    files: Sequence[Path], share: float, types: Sequence[ErrorType], rng: np.random.Generator,
) -> list[tuple[Path, ErrorType]]:
    """Which files get which error type: a share of the files, types dealt in shuffled rounds."""
    count = min(len(files), round(len(files) * share)) if share > 0 else 0
    count = max(count, 1) if share > 0 and files else count
    chosen = sorted(int(i) for i in rng.choice(len(files), size=count, replace=False))
    dealt: list[ErrorType] = []
    while len(dealt) < count:
        dealt.extend(types[int(i)] for i in rng.permutation(len(types)))
    return [(files[i], error_type) for i, error_type in zip(chosen, dealt, strict=False)]


def raw_files(raw_dir: Path) -> list[Path]:
    """The files waiting in the folder, in name order (hidden temporaries excluded)."""
    return list_visible_files(raw_dir)


def check_arguments(raw_dir: Path, share: float, row_share: float, seed: int | None) -> list[Path]:
    if not raw_dir.is_dir():
        raise UsageError(f"raw data folder not found: {raw_dir}")
    if not 0 <= share <= 1:
        raise UsageError(f"--share must be between 0 and 1, got {share:g}")
    if not 0 < row_share <= 1:
        raise UsageError(f"--row-share must be above 0 and at most 1, got {row_share:g}")
    if seed is not None and seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed}")
    files = raw_files(raw_dir)
    if not files:
        raise UsageError(f"no CSV file to inject errors into in {raw_dir}")
    return files


def inject_errors(
    raw_dir: Path,
    *,
    share: float,
    seed: int | None,
    row_share: float = 0.1,
    types: Sequence[ErrorType] = tuple(ErrorType),
) -> list[FileInjection]:
    """Spoil a share of the files in raw_dir in place, atomically; say what changed in each."""
    files = check_arguments(raw_dir, share, row_share, seed)
    if not types:
        raise UsageError("--types needs at least one error type")
    rng = np.random.default_rng(seed)
    results: list[FileInjection] = []
    contents: dict[Path, bytes] = {}
    for path, error_type in plan_injections(files, share, types, rng):
        try:
            contents[path], injection = inject_into_content(path.read_bytes(), error_type, rng, row_share)
        except (KeyError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
            # an already broken file (or one without the columns this fault needs) stays as it is
            results.append(FileInjection(path, None, f"{error_type} not applicable: {error}"))
            continue
        results.append(FileInjection(path, injection))
    write_atomic(_still_waiting(contents, results))
    return results


def _still_waiting(contents: dict[Path, bytes], results: list[FileInjection]) -> dict[Path, bytes]:
    """Drop the files ingestion took away while we worked: rewriting one would bring it back."""
    gone = {path for path in contents if not path.exists()}
    for index, result in enumerate(results):
        if result.file in gone:
            results[index] = FileInjection(result.file, None, "taken by ingestion before it was rewritten")
    return {path: data for path, data in contents.items() if path not in gone}


def parse_error_types(names: Sequence[str] | None) -> tuple[ErrorType, ...]:
    if not names:
        return tuple(ErrorType)
    known = {e.value: e for e in ErrorType} | {e.name.lower(): e for e in ErrorType}
    unknown = [n for n in names if n.lower() not in known]
    if unknown:
        raise UsageError(f"unknown error type {', '.join(unknown)}; choose from {', '.join(ErrorType)}")
    return tuple(dict.fromkeys(known[n.lower()] for n in names))


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog="inject_errors", description=__doc__.splitlines()[0])
    parser.add_argument("raw_data_dir", type=Path, help="the folder whose CSV files are spoiled")
    parser.add_argument("--share", type=float, required=True, help="share of the files to spoil (0-1)")
    parser.add_argument("--seed", type=int, default=None, help="same seed, same files: same result")
    parser.add_argument("--row-share", type=float, default=0.1, help="share of a file's rows (0-1]")
    parser.add_argument("--types", nargs="+", metavar="TYPE", help=f"a subset of: {', '.join(ErrorType)}")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(2**31))
    try:
        types = parse_error_types(args.types)
        results = inject_errors(
            args.raw_data_dir, share=args.share, seed=seed, row_share=args.row_share, types=types,
        )
    except UsageError as error:
        print(f"inject_errors: error: {error}", file=sys.stderr)
        return 2
    changed = sum(r.injection is not None for r in results)
    print(f"seed {seed}: {changed} files changed in {args.raw_data_dir}")
    for result in results:
        print(result.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
