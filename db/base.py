"""The declarative base every table model derives from (`db/models.py`, `db/monitoring_models.py`).

A module of its own so that the table modules import it and not one another.
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Holds the metadata of every table; Alembic's env compares migrations with it."""
