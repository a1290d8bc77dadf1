"""PostgreSQL: settings, embedded server, engine and sessions, models, migrations."""
