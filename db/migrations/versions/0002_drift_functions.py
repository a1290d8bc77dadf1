"""drift functions for the dashboards and alerts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:20:00

Grafana's SQL stays one line (`SELECT * FROM drift_psi($__timeFrom(), $__timeTo())`) and the PSI
arithmetic lives in one place that tests compare with a Python reference.

The functions read the feature list from `baseline_features` (itself derived from the contract)
and build their SQL over the typed feature columns at call time, so they name no feature column: a
feature added by a later migration is picked up with no change here, and replaying this migration
never refers to a column that does not exist yet.

Binning matches model/baseline.py: a numeric value falls in bin width_bucket(value, inner edges)
(numpy searchsorted side="right": bin 0 open below, the last bin open above); a category is its
value as text, and a value unknown to the baseline counts as a bin of its own (baseline share 0).
Empty bins on either side use an epsilon share of 1e-4, so PSI stays finite. Nulls are left out.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BASELINE_VERSION = """
CREATE OR REPLACE FUNCTION drift_baseline_version(requested text DEFAULT NULL)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- the requested model version, or the model loaded last
    SELECT coalesce(requested, (
        SELECT model_version FROM model_versions ORDER BY loaded_at DESC, trained_at DESC LIMIT 1
    ))
$$;
"""

# One row per (prediction, feature): `(feature, value)` pairs over the typed columns, built from the
# baseline's feature list at call time (PL/pgSQL dynamic SQL). Typed columns instead of
# to_jsonb(row): 20x faster, which keeps the panels under the 250 ms budget.
UNPIVOT = """
CREATE OR REPLACE FUNCTION drift_unpivot_sql(model_version text, numeric_as text)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- numeric_as 'bin': width_bucket over the inner bin edges (bin 0 open below, last open
    -- above, as numpy searchsorted side="right"); 'value': the number itself; categories: text
    SELECT string_agg(
        CASE
            WHEN f.kind <> 'numeric' THEN format('(%L, p.%I::text)', f.feature, f.feature)
            WHEN numeric_as = 'bin' THEN format(
                '(%L, width_bucket(p.%I::double precision, %L::double precision[])::text)',
                f.feature, f.feature, coalesce(e.inner_edges, '{}'))
            ELSE format('(%L, p.%I::double precision::text)', f.feature, f.feature)
        END, ', ' ORDER BY f.feature)
    FROM baseline_features f
    LEFT JOIN LATERAL (
        SELECT array_agg(b.lower ORDER BY b.bin) FILTER (WHERE b.lower IS NOT NULL) AS inner_edges
        FROM baseline_bins b WHERE b.model_version = f.model_version AND b.feature = f.feature
    ) e ON true
    WHERE f.model_version = drift_unpivot_sql.model_version
      AND (numeric_as = 'bin' OR f.kind = 'numeric')
$$;
"""

PSI = """
CREATE OR REPLACE FUNCTION drift_psi(
    window_start timestamptz, window_end timestamptz, model text DEFAULT NULL
)
RETURNS TABLE(feature text, kind text, psi double precision, serving_rows bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE
    version text := drift_baseline_version(model);
    unpivot text := drift_unpivot_sql(version, 'bin');
BEGIN
    IF unpivot IS NULL THEN
        RETURN;  -- no baseline loaded: nothing to compare with
    END IF;
    RETURN QUERY EXECUTE format($q$
        WITH observed AS (
            SELECT u.feature, u.bin_key, count(*) AS n
            FROM predictions p CROSS JOIN LATERAL (VALUES %s) AS u(feature, bin_key)
            WHERE p.created_at BETWEEN $1 AND $2 AND u.bin_key IS NOT NULL
            GROUP BY 1, 2
        ),
        totals AS (SELECT o.feature, sum(o.n) AS total FROM observed o GROUP BY o.feature),
        expected AS (
            SELECT b.feature, f.kind::text AS kind,
                   CASE WHEN f.kind = 'numeric' THEN b.bin::text ELSE b.category END AS bin_key,
                   b.proportion
            FROM baseline_bins b
            JOIN baseline_features f ON f.model_version = b.model_version AND f.feature = b.feature
            WHERE b.model_version = $3
        ),
        shares AS (
            SELECT coalesce(e.feature, o.feature) AS feature,
                   greatest(coalesce(e.proportion, 0), 1e-4) AS expected,
                   greatest(coalesce(o.n, 0)::double precision / t.total, 1e-4) AS actual
            FROM expected e
            FULL JOIN observed o ON o.feature = e.feature AND o.bin_key = e.bin_key
            JOIN totals t ON t.feature = coalesce(e.feature, o.feature)
        )
        SELECT s.feature, k.kind, sum((s.actual - s.expected) * ln(s.actual / s.expected)),
               t.total::bigint
        FROM shares s
        JOIN totals t ON t.feature = s.feature
        JOIN (SELECT DISTINCT e.feature, e.kind FROM expected e) k ON k.feature = s.feature
        GROUP BY s.feature, k.kind, t.total
    $q$, unpivot) USING window_start, window_end, version;
END
$fn$;
"""

MEANS = """
CREATE OR REPLACE FUNCTION drift_feature_means(
    window_start timestamptz, window_end timestamptz, model text DEFAULT NULL
)
RETURNS TABLE(
    feature text, serving_mean double precision, training_mean double precision,
    shift_in_std double precision, serving_rows bigint
)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE
    version text := drift_baseline_version(model);
    unpivot text := drift_unpivot_sql(version, 'value');
BEGIN
    IF unpivot IS NULL THEN
        RETURN;
    END IF;
    -- shift_in_std: how many training standard deviations the serving mean moved
    RETURN QUERY EXECUTE format($q$
        SELECT f.feature, avg(u.value::double precision), f.mean,
               (avg(u.value::double precision) - f.mean) / nullif(f.std, 0), count(u.value)
        FROM predictions p CROSS JOIN LATERAL (VALUES %s) AS u(feature, value)
        JOIN baseline_features f ON f.model_version = $3 AND f.feature = u.feature
        WHERE p.created_at BETWEEN $1 AND $2
        GROUP BY f.feature, f.mean, f.std
    $q$, unpivot) USING window_start, window_end, version;
END
$fn$;
"""


def upgrade() -> None:
    op.execute(BASELINE_VERSION)
    op.execute(UNPIVOT)
    op.execute(PSI)
    op.execute(MEANS)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS drift_feature_means(timestamptz, timestamptz, text)")
    op.execute("DROP FUNCTION IF EXISTS drift_psi(timestamptz, timestamptz, text)")
    op.execute("DROP FUNCTION IF EXISTS drift_unpivot_sql(text, text)")
    op.execute("DROP FUNCTION IF EXISTS drift_baseline_version(text)")
