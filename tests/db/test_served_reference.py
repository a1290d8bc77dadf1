"""The drift reference is the model version served last (model_versions.served_since, migration
0010), kept when a version's references are reloaded; before anything was served, the one loaded last."""

from __future__ import annotations

import json

from sqlalchemy import delete, text

from db.model_versions import has_model_version, mark_served, record_model_version, served_version
from db.models import ModelVersion
from db.session import session_scope
from model.files import ARTIFACTS_DIR, METADATA_FILE


def _reference() -> str:
    with session_scope() as session:
        return str(session.scalar(text("SELECT drift_baseline_version()")))


def test_the_drift_reference_follows_the_served_version_not_the_trained_one(clean_db: str) -> None:
    metadata = json.loads((ARTIFACTS_DIR / METADATA_FILE).read_text())
    first, second = ({**metadata, "model_version": f"served-ref-{name}"} for name in ("first", "second"))
    try:
        with session_scope() as session:
            session.execute(text("UPDATE model_versions SET served_since = NULL"))
            record_model_version(session=session, metadata=first)
        with session_scope() as session:
            record_model_version(session=session, metadata=second)
            assert has_model_version(session=session, model_version="served-ref-second")
        assert _reference() == "served-ref-second"  # nothing served yet: the one loaded last

        with session_scope() as session:
            assert mark_served(session=session, model_version="served-ref-first")
        assert _reference() == "served-ref-first"  # trained (loaded) later, but not served
        with session_scope() as session:
            assert not mark_served(session=session, model_version="served-ref-first")  # already it
            record_model_version(session=session, metadata=first)  # a reload keeps served_since
        with session_scope() as session:
            assert served_version(session=session) == "served-ref-first"
            assert mark_served(session=session, model_version="served-ref-second")
        assert _reference() == "served-ref-second"
        with session_scope() as session:  # a rollback: served again, the reference again
            assert mark_served(session=session, model_version="served-ref-first")
        assert _reference() == "served-ref-first"
    finally:
        with session_scope() as session:
            session.execute(delete(ModelVersion).where(ModelVersion.model_version.like("served-ref-%")))
            session.execute(text("UPDATE model_versions SET served_since = NULL"))
