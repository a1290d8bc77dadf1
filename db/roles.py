"""The read-only role Grafana connects as: SELECT on every table, now and later."""

from __future__ import annotations

from sqlalchemy import Connection, text


def ensure_readonly_role(connection: Connection, *, user: str, password: str) -> None:
    """Create or update the role and grant it read access to the public schema. Idempotent."""
    quoted = connection.dialect.identifier_preparer.quote(user)
    exists = connection.execute(
        text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": user}
    ).scalar()
    verb = "ALTER" if exists else "CREATE"
    # A password cannot be a bind parameter in DDL; quote it as a literal.
    literal = "'" + password.replace("'", "''") + "'"
    connection.execute(text(f"{verb} ROLE {quoted} LOGIN PASSWORD {literal}"))
    database = connection.execute(text("SELECT current_database()")).scalar()
    connection.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {quoted}'))
    connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {quoted}"))
    connection.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {quoted}"))
    connection.execute(
        text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {quoted}")
    )
    connection.execute(text(f"ALTER ROLE {quoted} SET default_transaction_read_only = on"))
