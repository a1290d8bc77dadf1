"""monitoring you can trust: drift tests with a known false-alarm rate, empty values, segments, CBPE

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 10:00:00

Tables: the monitoring reference per model version and segment, the logit weights, the CBPE
calibration, the contract's segments, the thresholds in force and the chi-square critical values
(db/monitoring_models.py says what each holds; `db.monitoring` fills them at baseline load).

Functions (what Grafana's read-only role runs; model/monitoring.py is the Python reference the
tests compare them with, and its docstring gives the statistics and their sources):

- `drift_test(from, to, segment, model)`: per feature, PSI of the window against the segment's
  training reference, the empty values in a bin of their own; the critical value
  (1/n + 1/N) x chi2 quantile at the Sidak share of the family-wise false-alarm rate; their ratio
  (drift when above 1); a status ('drift', 'no drift', 'too few rows', 'fixed by the segment');
  the empty share; and `logit_shift`, the mean change of the feature's contribution to the
  model's logit (exact for the logistic model; the shifts add up to the change of the mean logit).
- `drift_psi(from, to, model)`: kept for earlier callers, now drift_test's PSI over all rows.
- `feature_empty_shares(from, to)`: share of empty values per feature against training. A
  required feature's empty value makes its row invalid, so ingestion counts it (missing_value
  and missing_column errors over ingested rows); an optional one (total_charges) passes
  validation and is counted among the predictions.
- `estimated_performance(from, to, segment)`: CBPE, the expected confusion matrix from the
  calibrated probabilities of each prediction's model version, and precision, recall and F1.
- `segment_predictions(from, to, segment)`: the predictions of a segment, for rate panels.

A segment is 'all' or a name in `monitoring_segments` (another name raises an error naming the
choices). Dynamic SQL is built from the reference tables at call time (PL/pgSQL EXECUTE with
format %I/%L quoting), so no feature column is named here, as in migration 0002.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSION_FK = ("model_version", "model_versions.model_version")

SEGMENT_FILTER = """
CREATE OR REPLACE FUNCTION monitoring_segment_filter(segment text)
RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE
    predicate text;
BEGIN
    -- a predicate over the predictions row `p` selecting the segment
    IF segment = 'all' THEN
        RETURN 'true';
    END IF;
    SELECT CASE
               WHEN s.value IS NOT NULL THEN format('p.%I::text = %L', s.column_name, s.value)
               WHEN s.upper IS NULL THEN format('p.%I >= %L', s.column_name, s.lower)
               ELSE format('p.%I >= %L AND p.%I < %L', s.column_name, s.lower, s.column_name, s.upper)
           END
      INTO predicate
      FROM monitoring_segments s WHERE s.segment = monitoring_segment_filter.segment;
    IF predicate IS NULL THEN
        RAISE EXCEPTION 'unknown segment "%": use all or one of: %', segment,
            (SELECT string_agg(s.segment, ', ' ORDER BY s.position) FROM monitoring_segments s);
    END IF;
    RETURN predicate;
END
$fn$;
"""

# (feature, bin key, number) per feature of a predictions row `p`: numbers in their quantile bin
# (width_bucket = numpy searchsorted side="right") with their value, categories by value (number
# NULL), empty values in '(empty)'. The logit contributions are computed per bin afterwards (a
# category's weight; a number's weight x (sum of values - center)): per-row CASE expressions
# made the function three times slower.
UNPIVOT = """
CREATE OR REPLACE FUNCTION monitoring_unpivot_sql(version text)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT string_agg(
        CASE WHEN f.kind = 'numeric' THEN format(
            '(%L, CASE WHEN p.%I IS NULL THEN %L ELSE width_bucket(p.%I::double precision, '
            '%L::double precision[])::text END, p.%I::double precision)',
            f.feature, f.feature, '(empty)', f.feature, coalesce(e.inner_edges, '{}'), f.feature)
        ELSE format('(%L, coalesce(p.%I::text, %L), NULL::double precision)', f.feature, f.feature, '(empty)')
        END, ', ' ORDER BY f.feature)
    FROM baseline_features f
    LEFT JOIN LATERAL (
        SELECT array_agg(b.lower ORDER BY b.bin) FILTER (WHERE b.lower IS NOT NULL) AS inner_edges
        FROM baseline_bins b WHERE b.model_version = f.model_version AND b.feature = f.feature
    ) e ON true
    WHERE f.model_version = version
$$;
"""

DRIFT_TEST = """
CREATE OR REPLACE FUNCTION drift_test(
    window_start timestamptz, window_end timestamptz, segment text DEFAULT 'all', model text DEFAULT NULL
)
RETURNS TABLE(
    feature text, kind text, window_rows bigint, psi double precision, critical_value double precision,
    psi_ratio double precision, status text, empty_share double precision,
    training_empty_share double precision, logit_shift double precision, dof integer
)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE
    version text := drift_baseline_version(model);
    unpivot text := monitoring_unpivot_sql(version);
    predicate text := monitoring_segment_filter(segment);
BEGIN
    IF unpivot IS NULL THEN
        RETURN;  -- no baseline loaded: nothing to compare with
    END IF;
    RETURN QUERY EXECUTE format($q$
        WITH cells AS (
            SELECT u.feature, u.bin_key, count(*) AS c, sum(u.value) AS total
            FROM predictions p CROSS JOIN LATERAL (VALUES %s) AS u(feature, bin_key, value)
            WHERE p.created_at BETWEEN $1 AND $2 AND (%s)
            GROUP BY 1, 2
        ),
        totals AS (  -- rows and summed logit contribution per feature (weights per bin, see UNPIVOT)
            SELECT c.feature, sum(c.c) AS n,
                   coalesce(sum(CASE WHEN w.category = ''
                                     THEN w.weight * (coalesce(c.total, c.c * w.fill) - c.c * w.center)
                                     ELSE c.c * w.weight END), 0) AS contribution
            FROM cells c
            LEFT JOIN logit_weights w ON w.model_version = $3 AND w.feature = c.feature
                                     AND (w.category = c.bin_key OR w.category = '')
            GROUP BY 1
        ),
        size AS (SELECT coalesce(max(t.n), 0)::bigint AS n FROM totals t),
        psi AS (
            SELECT coalesce(r.feature, o.feature) AS feature,
                   sum((a.actual - a.expected) * ln(a.actual / a.expected)) AS psi
            FROM (SELECT * FROM drift_reference_bins r WHERE r.model_version = $3 AND r.segment = $4) r
            FULL JOIN cells o ON o.feature = r.feature AND o.bin_key = r.bin_key
            CROSS JOIN size
            CROSS JOIN LATERAL (
                SELECT greatest(coalesce(o.c::double precision / nullif(size.n, 0), 0), 1e-4) AS actual,
                       greatest(coalesce(r.share, 0), 1e-4) AS expected
            ) a
            WHERE size.n > 0
            GROUP BY 1
        )
        SELECT d.feature, d.kind, size.n, psi.psi, crit.value, psi.psi / crit.value,
               CASE WHEN s.id IS NULL THEN 'no settings loaded'
                    WHEN d.dof < 1 THEN 'fixed by the segment'
                    WHEN size.n < s.min_rows THEN 'too few rows'
                    WHEN crit.value IS NULL THEN 'no critical value'
                    WHEN psi.psi > crit.value THEN 'drift' ELSE 'no drift' END,
               coalesce(e.c, 0)::double precision / nullif(size.n, 0), d.empty_share,
               t.contribution / nullif(size.n, 0) - d.mean_contribution, d.dof
        FROM drift_reference d
        JOIN segment_reference sr ON sr.model_version = d.model_version AND sr.segment = d.segment
        CROSS JOIN size
        LEFT JOIN monitoring_settings s ON s.id = 1
        LEFT JOIN drift_critical_values q
               ON q.dof = d.dof AND q.family_false_alarm_rate = s.family_false_alarm_rate
              AND q.tests = (SELECT count(*) FROM baseline_features bf WHERE bf.model_version = $3)
        LEFT JOIN psi ON psi.feature = d.feature
        LEFT JOIN totals t ON t.feature = d.feature
        LEFT JOIN cells e ON e.feature = d.feature AND e.bin_key = '(empty)'
        CROSS JOIN LATERAL (
            SELECT CASE WHEN d.dof >= 1 AND size.n >= s.min_rows
                        THEN (1.0 / size.n + 1.0 / sr.training_rows) * q.chi2_quantile END AS value
        ) crit
        WHERE d.model_version = $3 AND d.segment = $4
    $q$, unpivot, predicate) USING window_start, window_end, version, segment;
END
$fn$;
"""

PSI = """
CREATE FUNCTION drift_psi(window_start timestamptz, window_end timestamptz, model text DEFAULT NULL)
RETURNS TABLE(feature text, kind text, psi double precision, serving_rows bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT d.feature, d.kind, d.psi, d.window_rows FROM drift_test(window_start, window_end, 'all', model) d
$$;
"""

EMPTY_SHARES = """
CREATE OR REPLACE FUNCTION feature_empty_shares(window_start timestamptz, window_end timestamptz)
RETURNS TABLE(
    feature text, counted_at text, window_rows bigint, empty_rows bigint, empty_share double precision,
    training_empty_share double precision, alert_ratio double precision, status text
)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE
    version text := drift_baseline_version();
    -- (feature, empty?) per optional feature of a predictions row: one scan counts them all
    optional text := (
        SELECT string_agg(format('(%L, p.%I IS NULL)', d.feature, d.feature), ', ' ORDER BY d.feature)
        FROM drift_reference d
        WHERE d.model_version = version AND d.segment = 'all' AND d.empty_allowed
    );
BEGIN
    RETURN QUERY EXECUTE format($q$
        WITH files AS (
            SELECT f.id, f.rows FROM ingested_files f WHERE f.ingested_at BETWEEN $1 AND $2
        ),
        ingested AS (SELECT coalesce(sum(files.rows), 0)::bigint AS n FROM files),
        ingestion_empties AS (
            SELECT e.column_name, sum(e.count)::bigint AS empty
            FROM files CROSS JOIN LATERAL (
                -- one index lookup per file of the range (OFFSET 0: no hash of all errors)
                SELECT column_name, count FROM ingestion_errors
                WHERE ingested_file_id = files.id AND error_type IN ('missing_value', 'missing_column')
                OFFSET 0
            ) e
            GROUP BY 1
        ),
        served AS (
            SELECT u.feature, count(*) AS n, count(*) FILTER (WHERE u.empty) AS empty
            FROM predictions p CROSS JOIN LATERAL (VALUES %s) AS u(feature, empty)
            WHERE p.created_at BETWEEN $1 AND $2 AND u.feature IS NOT NULL
            GROUP BY 1
        ),
        counted AS (
            SELECT d.feature, d.empty_allowed, d.empty_share,
                   CASE WHEN d.empty_allowed THEN coalesce(sv.n, 0) ELSE ingested.n END::bigint AS n,
                   CASE WHEN d.empty_allowed THEN coalesce(sv.empty, 0) ELSE coalesce(ie.empty, 0) END::bigint
                       AS empty
            FROM drift_reference d
            CROSS JOIN ingested
            LEFT JOIN served sv ON sv.feature = d.feature
            LEFT JOIN ingestion_empties ie ON ie.column_name = d.feature
            WHERE d.model_version = $3 AND d.segment = 'all'
        )
        SELECT c.feature, CASE WHEN c.empty_allowed THEN 'predictions' ELSE 'ingestion' END, c.n, c.empty,
               c.empty::double precision / nullif(c.n, 0), c.empty_share,
               CASE WHEN c.n >= s.min_rows AND c.empty_share < s.rarely_empty_share
                    THEN c.empty::double precision / c.n / s.empty_share_alert ELSE 0 END,
               CASE WHEN s.id IS NULL THEN 'no settings loaded'
                    WHEN c.n < s.min_rows THEN 'too few rows'
                    WHEN c.empty_share >= s.rarely_empty_share THEN 'often empty in training'
                    WHEN c.empty::double precision / c.n > s.empty_share_alert THEN 'mostly empty'
                    ELSE 'ok' END
        FROM counted c LEFT JOIN monitoring_settings s ON s.id = 1
    $q$, coalesce(optional, '(NULL::text, false)')) USING window_start, window_end, version;
END
$fn$;
"""

ESTIMATED_PERFORMANCE = """
CREATE OR REPLACE FUNCTION estimated_performance(
    window_start timestamptz, window_end timestamptz, segment text DEFAULT 'all'
)
RETURNS TABLE(
    window_rows bigint, estimated_rows bigint, expected_tp double precision, expected_fp double precision,
    expected_fn double precision, expected_tn double precision, estimated_precision double precision,
    estimated_recall double precision, estimated_f1 double precision,
    predicted_positive_rate double precision, status text
)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE
    predicate text := monitoring_segment_filter(segment);
BEGIN
    -- CBPE: calibrated probability c of each prediction (Platt scaling of its model version);
    -- expected TP = sum c over predicted churners, FP = sum (1 - c) over them, FN = sum c over the rest
    RETURN QUERY EXECUTE format($q$
        WITH scored AS (
            SELECT p.predicted_label AS decision,
                   1.0 / (1.0 + exp(-(c.slope * ln(x.q / (1 - x.q)) + c.intercept))) AS calibrated
            FROM predictions p
            LEFT JOIN model_calibration c ON c.model_version = p.model_version
            CROSS JOIN LATERAL (SELECT least(greatest(p.churn_probability, 1e-12), 1 - 1e-12) AS q) x
            WHERE p.created_at BETWEEN $1 AND $2 AND (%s)
        ),
        m AS (
            SELECT count(*)::bigint AS n, count(calibrated)::bigint AS k,
                   coalesce(sum(calibrated) FILTER (WHERE decision = 1), 0) AS tp,
                   coalesce(sum(1 - calibrated) FILTER (WHERE decision = 1), 0) AS fp,
                   coalesce(sum(calibrated) FILTER (WHERE decision = 0), 0) AS fn,
                   coalesce(sum(1 - calibrated) FILTER (WHERE decision = 0), 0) AS tn,
                   avg(decision) FILTER (WHERE calibrated IS NOT NULL)::double precision AS rate
            FROM scored
        ),
        judged AS (
            SELECT m.*, CASE WHEN s.id IS NULL THEN 'no settings loaded'
                             WHEN m.k < s.min_rows THEN 'too few rows' ELSE 'estimated' END AS status
            FROM m LEFT JOIN monitoring_settings s ON s.id = 1
        )
        SELECT n, k, tp, fp, fn, tn,
               CASE WHEN status = 'estimated' THEN tp / nullif(tp + fp, 0) END,
               CASE WHEN status = 'estimated' THEN tp / nullif(tp + fn, 0) END,
               CASE WHEN status = 'estimated' THEN 2 * tp / nullif(2 * tp + fp + fn, 0) END,
               rate, status
        FROM judged
    $q$, predicate) USING window_start, window_end;
END
$fn$;
"""

SEGMENT_PREDICTIONS = """
CREATE OR REPLACE FUNCTION segment_predictions(
    window_start timestamptz, window_end timestamptz, segment text DEFAULT 'all'
)
RETURNS TABLE(
    created_at timestamptz, source text, model_version text, predicted_label smallint,
    churn_probability double precision
)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
BEGIN
    RETURN QUERY EXECUTE format($q$
        SELECT p.created_at, p.source::text, p.model_version, p.predicted_label, p.churn_probability
        FROM predictions p WHERE p.created_at BETWEEN $1 AND $2 AND (%s)
        ORDER BY p.created_at
    $q$, monitoring_segment_filter(segment)) USING window_start, window_end;
END
$fn$;
"""

OLD_PSI = "drift_psi(timestamptz, timestamptz, text)"
FUNCTIONS = (
    "segment_predictions(timestamptz, timestamptz, text)",
    "estimated_performance(timestamptz, timestamptz, text)",
    "feature_empty_shares(timestamptz, timestamptz)",
    OLD_PSI,
    "drift_test(timestamptz, timestamptz, text, text)",
    "monitoring_unpivot_sql(text)",
    "monitoring_segment_filter(text)",
)


def _migration_0002() -> ModuleType:
    path = Path(__file__).with_name("0002_drift_functions.py")
    spec = importlib.util.spec_from_file_location("migration_0002", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _version_key() -> list[sa.Column]:
    return [sa.Column("model_version", sa.Text(), nullable=False), sa.Column("segment", sa.Text(), nullable=False)]


def _version_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["model_version"], ["model_versions.model_version"], ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "monitoring_settings",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("family_false_alarm_rate", sa.Double(), nullable=False),
        sa.Column("min_rows", sa.Integer(), nullable=False),
        sa.Column("empty_share_alert", sa.Double(), nullable=False),
        sa.Column("rarely_empty_share", sa.Double(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_monitoring_settings_one_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "monitoring_segments",
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("dimension", sa.Text(), nullable=False),
        sa.Column("column_name", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("lower", sa.Double(), nullable=True),
        sa.Column("upper", sa.Double(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("segment"),
    )
    op.create_table(
        "segment_reference", *_version_key(),
        sa.Column("training_rows", sa.Integer(), nullable=False),
        sa.Column("training_churn_rate", sa.Double(), nullable=False),
        sa.Column("mean_logit", sa.Double(), nullable=False),
        _version_fk(), sa.PrimaryKeyConstraint("model_version", "segment"),
    )
    op.create_table(
        "drift_reference", *_version_key(),
        sa.Column("feature", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("empty_allowed", sa.Boolean(), nullable=False),
        sa.Column("empty_share", sa.Double(), nullable=False),
        sa.Column("dof", sa.Integer(), nullable=False),
        sa.Column("mean_contribution", sa.Double(), nullable=False),
        _version_fk(), sa.PrimaryKeyConstraint("model_version", "segment", "feature"),
    )
    op.create_table(
        "drift_reference_bins", *_version_key(),
        sa.Column("feature", sa.Text(), nullable=False),
        sa.Column("bin_key", sa.Text(), nullable=False),
        sa.Column("share", sa.Double(), nullable=False),
        _version_fk(), sa.PrimaryKeyConstraint("model_version", "segment", "feature", "bin_key"),
    )
    op.create_table(
        "drift_critical_values",
        sa.Column("dof", sa.Integer(), nullable=False),
        sa.Column("family_false_alarm_rate", sa.Double(), nullable=False),
        sa.Column("tests", sa.Integer(), nullable=False),
        sa.Column("chi2_quantile", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("dof", "family_false_alarm_rate", "tests"),
    )
    op.create_table(
        "logit_weights",
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("feature", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("weight", sa.Double(), nullable=False),
        sa.Column("center", sa.Double(), nullable=True),
        sa.Column("fill", sa.Double(), nullable=True),
        _version_fk(), sa.PrimaryKeyConstraint("model_version", "feature", "category"),
    )
    op.create_table(
        "model_calibration",
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("slope", sa.Double(), nullable=False),
        sa.Column("intercept", sa.Double(), nullable=False),
        sa.Column("fitted_on", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        _version_fk(), sa.PrimaryKeyConstraint("model_version"),
    )
    op.execute(SEGMENT_FILTER)
    op.execute(UNPIVOT)
    op.execute(DRIFT_TEST)
    op.execute(f"DROP FUNCTION {OLD_PSI}")  # its result now comes from drift_test (empty bin included)
    op.execute(PSI)
    op.execute(EMPTY_SHARES)
    op.execute(ESTIMATED_PERFORMANCE)
    op.execute(SEGMENT_PREDICTIONS)


def downgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.execute(_migration_0002().PSI)  # the old drift_psi back
    for table in (
        "model_calibration", "logit_weights", "drift_critical_values", "drift_reference_bins",
        "drift_reference", "segment_reference", "monitoring_segments", "monitoring_settings",
    ):
        op.drop_table(table)
