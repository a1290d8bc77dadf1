"""predictions partitioned by month of created_at; references on (id, created_at)

`predictions` becomes a table partitioned by range of `created_at`, one partition per calendar
month in UTC (`predictions_p2026_01`...) plus a DEFAULT partition (`predictions_default`) that
catches a row no monthly partition covers, so that no insert ever fails for lack of a partition.
Old history then goes a partition at a time (`db/partitions.py`, PREDICTIONS_RETENTION_DAYS), and
a query over a time window reads only the months it covers.

- The primary key becomes (id, created_at): a partitioned table's unique keys must hold the
  partition key. Ids still come from the same sequence, so `id` stays unique by itself.
- `labels` and `shadow_predictions` refer to a prediction by (prediction_id,
  prediction_created_at), MATCH FULL (both set or both null), with the same ON DELETE actions as
  before (SET NULL, CASCADE). `prediction_created_at` is filled by a trigger from `prediction_id`
  when a writer gives only the id, so writers that know the id alone keep working.
- `ensure_predictions_partitions(from, to)` creates the monthly partitions covering [from, to]
  (idempotent, serialized by an advisory lock). Rows that landed in the default partition for a
  month move into that month's new partition in the same transaction, nothing lost.

The existing rows are copied into the new table (same ids, same values) and the old table dropped,
all in the migration's one transaction: the table is locked for the copy (about 10 s per million
rows here). The downgrade copies them back into one plain table.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (  # (name, columns) on predictions, as in db/models.py
    ("ix_predictions_created_at_id", "created_at, id"),
    ("ix_predictions_source_created_at", "source, created_at"),
    ("ix_predictions_batch_key", "batch_key"),
    ("ix_predictions_customer_created_at", "customer_id, created_at"),
)
REFERENCES = (  # (table, ON DELETE action) of the tables that refer to a prediction
    ("labels", "SET NULL"),
    ("shadow_predictions", "CASCADE"),
)

ADD_REFERENCES = """
    ALTER TABLE labels ADD CONSTRAINT fk_labels_prediction
        FOREIGN KEY (prediction_id, prediction_created_at) REFERENCES predictions (id, created_at)
        MATCH FULL ON DELETE SET NULL;
    ALTER TABLE shadow_predictions ADD CONSTRAINT fk_shadow_predictions_prediction
        FOREIGN KEY (prediction_id, prediction_created_at) REFERENCES predictions (id, created_at)
        MATCH FULL ON DELETE CASCADE;
"""
DROP_REFERENCES = """
    ALTER TABLE labels DROP CONSTRAINT fk_labels_prediction;
    ALTER TABLE shadow_predictions DROP CONSTRAINT fk_shadow_predictions_prediction;
"""

# One partition per UTC month of [first_at, last_at]; returns the names it created. A month whose
# rows sit in the default partition (inserted before its partition existed) gets them moved in:
# PostgreSQL refuses to create a partition while the default holds rows of its range, and the
# references of labels and shadow predictions to those rows are kept (dropped and re-made around
# the move, inside this transaction, so no other session ever sees them missing).
ENSURE_PARTITIONS = f"""
CREATE OR REPLACE FUNCTION ensure_predictions_partitions(first_at timestamptz, last_at timestamptz)
RETURNS SETOF text LANGUAGE plpgsql AS $fn$
DECLARE
    month_start timestamptz := date_trunc('month', first_at, 'UTC');
    month_end timestamptz;
    partition_name text;
BEGIN
    IF first_at IS NULL OR last_at IS NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('ensure_predictions_partitions'));
    WHILE month_start <= last_at LOOP
        month_end := (month_start AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC';
        partition_name := 'predictions_p' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
        IF to_regclass(partition_name) IS NULL THEN
            IF EXISTS (SELECT 1 FROM predictions_default
                       WHERE created_at >= month_start AND created_at < month_end) THEN
                {DROP_REFERENCES}
                EXECUTE 'CREATE TEMP TABLE predictions_moving (LIKE predictions)';
                EXECUTE 'WITH moved AS (DELETE FROM predictions_default '
                        'WHERE created_at >= $1 AND created_at < $2 RETURNING *) '
                        'INSERT INTO predictions_moving SELECT * FROM moved' USING month_start, month_end;
                EXECUTE format('CREATE TABLE %I PARTITION OF predictions FOR VALUES FROM (%L) TO (%L)',
                               partition_name, month_start, month_end);
                EXECUTE 'INSERT INTO predictions SELECT * FROM predictions_moving';
                EXECUTE 'DROP TABLE predictions_moving';
                {ADD_REFERENCES}
            ELSE
                EXECUTE format('CREATE TABLE %I PARTITION OF predictions FOR VALUES FROM (%L) TO (%L)',
                               partition_name, month_start, month_end);
            END IF;
            RETURN NEXT partition_name;
        END IF;
        month_start := month_end;
    END LOOP;
END
$fn$
"""

# A writer that names only the prediction's id gets its created_at filled in (the composite key)
FILL_PREDICTION_CREATED_AT = """
CREATE OR REPLACE FUNCTION fill_prediction_created_at() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.prediction_id IS NULL THEN
        NEW.prediction_created_at := NULL;
    ELSIF NEW.prediction_created_at IS NULL
          OR (TG_OP = 'UPDATE' AND NEW.prediction_id IS DISTINCT FROM OLD.prediction_id
              AND NEW.prediction_created_at IS NOT DISTINCT FROM OLD.prediction_created_at) THEN
        NEW.prediction_created_at := (SELECT p.created_at FROM predictions p WHERE p.id = NEW.prediction_id);
    END IF;
    RETURN NEW;
END
$fn$
"""


def upgrade() -> None:
    for table, _ in REFERENCES:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_prediction_id_fkey")
    op.execute("ALTER TABLE predictions RENAME TO predictions_unpartitioned")
    op.execute("ALTER TABLE predictions_unpartitioned RENAME CONSTRAINT predictions_pkey "
               "TO predictions_unpartitioned_pkey")
    for name, _ in INDEXES:
        op.execute(f"DROP INDEX {name}")
    op.execute("""
        CREATE TABLE predictions (LIKE predictions_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
            PARTITION BY RANGE (created_at);
        ALTER TABLE predictions ADD CONSTRAINT predictions_pkey PRIMARY KEY (id, created_at);
        ALTER TABLE predictions ADD CONSTRAINT predictions_batch_key_fkey FOREIGN KEY (batch_key)
            REFERENCES prediction_batches (batch_key) ON DELETE CASCADE;
        ALTER SEQUENCE predictions_id_seq OWNED BY predictions.id;
        CREATE TABLE predictions_default PARTITION OF predictions DEFAULT;
    """)
    op.execute(ENSURE_PARTITIONS)
    # every month of the stored history, and this month to three ahead
    op.execute("""
        SELECT ensure_predictions_partitions(least(min(created_at), now()),
                                             now() + interval '3 months')
        FROM predictions_unpartitioned
    """)
    op.execute("INSERT INTO predictions SELECT * FROM predictions_unpartitioned ORDER BY created_at, id")
    op.execute("DROP TABLE predictions_unpartitioned")
    for name, columns in INDEXES:
        op.execute(f"CREATE INDEX {name} ON predictions ({columns})")
    op.execute(FILL_PREDICTION_CREATED_AT)
    for table, _ in REFERENCES:
        op.execute(f"""
            ALTER TABLE {table} ADD COLUMN prediction_created_at timestamptz;
            UPDATE {table} AS r SET prediction_created_at = p.created_at
                FROM predictions AS p WHERE p.id = r.prediction_id;
            CREATE INDEX ix_{table}_prediction_created_at ON {table} (prediction_created_at);
            {"ALTER TABLE shadow_predictions ALTER COLUMN prediction_created_at SET NOT NULL;"
             if table == "shadow_predictions" else ""}
            CREATE TRIGGER fill_prediction_created_at
                BEFORE INSERT OR UPDATE OF prediction_id, prediction_created_at ON {table}
                FOR EACH ROW EXECUTE FUNCTION fill_prediction_created_at();
        """)
    op.execute(ADD_REFERENCES)
    op.execute("ANALYZE predictions")


def downgrade() -> None:
    op.execute(DROP_REFERENCES)
    for table, _ in REFERENCES:
        op.execute(f"""
            DROP TRIGGER fill_prediction_created_at ON {table};
            DROP INDEX ix_{table}_prediction_created_at;
            ALTER TABLE {table} DROP COLUMN prediction_created_at;
        """)
    op.execute("DROP FUNCTION fill_prediction_created_at()")
    op.execute("DROP FUNCTION ensure_predictions_partitions(timestamptz, timestamptz)")
    op.execute("ALTER TABLE predictions RENAME TO predictions_partitioned")
    op.execute("ALTER TABLE predictions_partitioned RENAME CONSTRAINT predictions_pkey "
               "TO predictions_partitioned_pkey")
    for name, _ in INDEXES:
        op.execute(f"DROP INDEX {name}")
    op.execute("""
        CREATE TABLE predictions (LIKE predictions_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
        ALTER TABLE predictions ADD CONSTRAINT predictions_pkey PRIMARY KEY (id);
        ALTER TABLE predictions ADD CONSTRAINT predictions_batch_key_fkey FOREIGN KEY (batch_key)
            REFERENCES prediction_batches (batch_key) ON DELETE CASCADE;
        ALTER SEQUENCE predictions_id_seq OWNED BY predictions.id;
        INSERT INTO predictions SELECT * FROM predictions_partitioned ORDER BY created_at, id;
        DROP TABLE predictions_partitioned;
    """)
    for name, columns in INDEXES:
        op.execute(f"CREATE INDEX {name} ON predictions ({columns})")
    for table, action in REFERENCES:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_prediction_id_fkey FOREIGN KEY "
                   f"(prediction_id) REFERENCES predictions (id) ON DELETE {action}")
