"""drift tests count each customer once per window (their latest row), small windows corrected

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 23:40:00

Customers are scored again and again (each scheduled file, each webapp request). The chi-square
law of PSI behind `drift_test`'s critical value assumes the window's rows are independent draws;
a window in which customers repeat is not (a customer scored three times counts three times the
same values), so such windows alarmed far above the stated rate. `drift_test` now reads, per
window, each customer's LATEST row in it (by created_at, then id); rows without a customer id
count as distinct customers. `window_rows` is that count of customers, and the "too few rows" rule
applies to it. `drift_psi` (built on drift_test) follows. The critical value is also multiplied
by (1 + 30 / n), n the window's customers: the chi-square law's tail is too light for small
windows (2 % false alarms at 100 rows against the stated 1 %; model/monitoring.py explains). model/monitoring.py's
`latest_per_customer` is the Python twin; bench/monitoring_power.py measures the false-alarm rate
of windows with repeated customers and of fresh ones.

The segment filter applies to the customers' latest rows (a customer who moved to another segment
counts in their current one). Only the drift test changes: the empty-value shares, CBPE and rate
panels describe the predictions served (means, no test with a stated rate) and keep counting rows.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CELLS = """        WITH cells AS (
            SELECT u.feature, u.bin_key, count(*) AS c, sum(u.value) AS total
            FROM predictions p CROSS JOIN LATERAL (VALUES %s) AS u(feature, bin_key, value)
            WHERE p.created_at BETWEEN $1 AND $2 AND (%s)
            GROUP BY 1, 2
        ),"""

# the window's rows: each customer's latest row (DISTINCT ON keeps the first row of each group in
# the ORDER BY); a row without customer id is a group of its own (its id as second key, else NULL)
NEW_CELLS = """        WITH latest AS (
            SELECT DISTINCT ON (w.customer_id, CASE WHEN w.customer_id IS NULL THEN w.id END) w.*
            FROM predictions w
            WHERE w.created_at BETWEEN $1 AND $2
            ORDER BY w.customer_id, CASE WHEN w.customer_id IS NULL THEN w.id END,
                     w.created_at DESC, w.id DESC
        ),
        cells AS (
            SELECT u.feature, u.bin_key, count(*) AS c, sum(u.value) AS total
            FROM latest p CROSS JOIN LATERAL (VALUES %s) AS u(feature, bin_key, value)
            WHERE (%s)
            GROUP BY 1, 2
        ),"""


def _migration(file_name: str) -> ModuleType:
    path = Path(__file__).with_name(file_name)
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OLD_CRITICAL = "THEN (1.0 / size.n + 1.0 / sr.training_rows) * q.chi2_quantile END AS value"
# x (1 + 30 / n): the small-window correction of the chi-square law (model/monitoring.py,
# SMALL_WINDOW_TERM; tests/grafana/test_monitoring.py checks the two agree)
NEW_CRITICAL = ("THEN (1.0 / size.n + 1.0 / sr.training_rows) * q.chi2_quantile * (1.0 + 30.0 / size.n)\n"
                "                        END AS value")


def drift_test_sql() -> str:
    """0008's drift_test with the window's rows replaced by each customer's latest row, and the
    small-window correction of the critical value."""
    old: str = _migration("0008_monitoring_statistics.py").DRIFT_TEST
    if OLD_CELLS not in old or OLD_CRITICAL not in old:
        raise RuntimeError("migration 0008's drift_test changed: update 0010's rewrite of it")
    return old.replace(OLD_CELLS, NEW_CELLS).replace(OLD_CRITICAL, NEW_CRITICAL)


def upgrade() -> None:
    op.execute(drift_test_sql())


def downgrade() -> None:
    op.execute(_migration("0008_monitoring_statistics.py").DRIFT_TEST)  # every row counts again
