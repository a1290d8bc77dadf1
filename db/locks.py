"""Cluster-wide mutual exclusion between jobs: PostgreSQL advisory locks.

A lock is held by a connection of its own (not a job step's session, whose transactions commit
and whose connection goes back to the pool): it lasts as long as the `with` block, and when the
process dies its connection closes and PostgreSQL releases the lock, so no lease ever needs
cleaning up. Used for: one retraining at a time (`RETRAINING`, tried, never waited for) and the
compare-and-set of registry aliases (`REGISTRY_ALIASES`, waited for: a few registry calls).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from db.session import get_engine

RETRAINING = "churn.retraining"
REGISTRY_ALIASES = "churn.registry_aliases"


def lock_key(name: str) -> int:
    """The signed 64-bit advisory-lock key of a lock name (first 8 bytes of its SHA-256)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def advisory_lock(name: str, *, wait: bool) -> Iterator[bool]:
    """Hold the advisory lock `name` for the block; yields whether it was acquired.

    `wait=False` tries once (yields False at once when another holder has it); `wait=True` blocks
    until it is free (yields True). Takes no session on purpose: the lock needs a connection of
    its own for its whole life (see the module docstring).
    """
    key = lock_key(name)
    with get_engine().connect() as connection:
        if wait:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            acquired = True
        else:
            acquired = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                               {"key": key}).scalar_one())
        connection.commit()
        try:
            yield acquired
        finally:
            if acquired:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
