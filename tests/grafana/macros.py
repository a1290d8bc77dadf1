"""Grafana's SQL macros, expanded the way its PostgreSQL datasource does, so tests run what it runs.

Follows grafana/grafana `pkg/tsdb/grafana-postgresql-datasource/macros.go` and the SQL engine's
global interpolation (`pkg/tsdb/sqleng`): first `$__interval_ms`, `$__interval`,
`$__unixEpochFrom()`, `$__unixEpochTo()` by plain replacement, then every `$__name(args)` with
the regex `\\$([_a-zA-Z0-9]+)\\(([^\\)]*)\\)`:

- `$__timeFilter(col)`   -> `col BETWEEN '<from>' AND '<to>'` (RFC 3339, UTC, nanoseconds trimmed)
- `$__timeFrom()` / `$__timeTo()` -> `'<from>'` / `'<to>'`
- `$__timeGroup(col, '5m')` -> `floor(extract(epoch from col)/300)*300`; followed directly by a
  comma it becomes `$__timeGroupAlias` (Grafana's pre-5.3 compatibility rule)
- `$__timeGroupAlias(col, '5m')` -> the same plus ` AS "time"`
- `$__time(col)`, `$__timeEpoch(col)`, `$__unixEpochFilter(col)`, `$__unixEpochGroup(col, '5m')`

Dashboard template variables (Grafana's `templateSrv` interpolation) come first: `${name:sqlstring}`
is the value quoted as an SQL string (each ' doubled), `${name}` and `$name` the raw value.

The interval is what the dashboard asks for: the panel's range divided by its data points, rounded
like Grafana's `rangeutil.roundInterval`, and never below the panel's minimum interval.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
VARIABLE = re.compile(r"\$\{([_a-zA-Z0-9]+)(?::([a-z]+))?\}|\$([a-zA-Z][_a-zA-Z0-9]*)\b(?!\()")
INTERVAL = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# Grafana's rangeutil.roundInterval: (upper bound in ms, rounded interval in ms)
ROUNDING = (
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
    (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000),
    (90000, 60000), (210000, 120000), (450000, 300000), (1050000, 600000), (2100000, 1200000),
    (5400000, 3600000), (9000000, 7200000), (16200000, 10800000), (32400000, 21600000),
    (86400000, 43200000), (604800000, 86400000),
)


class MacroError(ValueError):
    """A macro Grafana would refuse (it answers `macro_error()` and fails the query)."""


def rfc3339(moment: datetime) -> str:
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped, 'Z' for UTC."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += ("." + f"{moment.microsecond:06d}").rstrip("0")
    return text + "Z"


def parse_interval(text: str) -> timedelta:
    match = INTERVAL.match(text.strip().strip("'"))
    if not match:
        raise MacroError(f"error parsing interval {text}")
    return timedelta(seconds=int(match.group(1)) * UNIT_SECONDS[match.group(2)])


def format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval: the largest whole unit (1h, 5m, 30s, 200ms)."""
    ms = round(interval.total_seconds() * 1000)
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def panel_interval(
    start: datetime, end: datetime, min_interval: str | None, max_data_points: int = 1000,
) -> timedelta:
    """The $__interval Grafana computes for a panel: range / data points, rounded, floored at min."""
    raw_ms = (end - start).total_seconds() * 1000 / max_data_points
    rounded = next((out for bound, out in ROUNDING if raw_ms < bound), 604800000)
    interval = timedelta(milliseconds=rounded)
    return max(interval, parse_interval(min_interval)) if min_interval else interval


def _go_float(value: float) -> str:
    """Go's %v of a float64 for the values intervals produce (300 -> '300', 0.5 -> '0.5')."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e6 else repr(value)


def _time_group(args: list[str]) -> str:
    if len(args) < 2:
        raise MacroError("macro __timeGroup needs time column and interval and optional fill value")
    seconds = _go_float(parse_interval(args[1]).total_seconds())
    return f"floor(extract(epoch from {args[0]})/{seconds})*{seconds}"


def _evaluate(name: str, args: list[str], start: datetime, end: datetime) -> str:
    column = args[0] if args and args[0] else None
    needs_column = {"__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter"}
    if name in needs_column and column is None:
        raise MacroError(f"missing time column argument for macro {name}")
    if name == "__time":
        return f'{column} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {column}) as "time"'
    if name == "__timeFilter":
        return f"{column} BETWEEN '{rfc3339(start)}' AND '{rfc3339(end)}'"
    if name == "__timeFrom":
        return f"'{rfc3339(start)}'"
    if name == "__timeTo":
        return f"'{rfc3339(end)}'"
    if name == "__timeGroup":
        return _time_group(args)
    if name == "__timeGroupAlias":
        return _time_group(args) + ' AS "time"'
    if name == "__unixEpochFilter":
        return f"{column} >= {int(start.timestamp())} AND {column} <= {int(end.timestamp())}"
    if name in ("__unixEpochGroup", "__unixEpochGroupAlias"):
        seconds = _go_float(parse_interval(args[1]).total_seconds())
        alias = ' AS "time"' if name.endswith("Alias") else ""
        return f"floor(({column})/{seconds})*{seconds}{alias}"
    raise MacroError(f'unknown macro "{name}"')


def dashboard_variables(board: Mapping[str, Any]) -> dict[str, str]:
    """Each template variable of a dashboard at its default (current) value."""
    return {v["name"]: v["current"]["value"] for v in board.get("templating", {}).get("list", [])}


def expand_variables(sql: str, variables: Mapping[str, str]) -> str:
    """Template variables replaced as Grafana does before the datasource sees the query."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name not in variables:
            raise MacroError(f"unknown template variable ${name}")
        value, form = variables[name], match.group(2)
        if form == "sqlstring":
            return "'" + value.replace("'", "''") + "'"
        if form is not None:
            raise MacroError(f"variable format {form} not supported here")
        return value

    return VARIABLE.sub(replace, sql)


def expand_macros(
    sql: str, *, start: datetime, end: datetime, interval: timedelta,
    variables: Mapping[str, str] | None = None,
) -> str:
    """The SQL Grafana sends to PostgreSQL for this time range, interval and template variables."""
    sql = expand_variables(sql, variables or {})
    sql = sql.replace("$__interval_ms", str(round(interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(int(start.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(end.timestamp())))

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "__timeGroup":  # followed directly by a comma: the pre-5.3 alias form
            after = sql.find(match.group(0)) + len(match.group(0))
            if after < len(sql) and sql[after] == ",":
                name = "__timeGroupAlias"
        args = [arg.strip(" ") for arg in match.group(2).split(",")]
        return _evaluate(name, args, start, end)

    expanded = MACRO.sub(replace, sql)
    if "$__" in expanded:
        raise MacroError(f"unexpanded Grafana variable left in: {expanded}")
    return expanded
