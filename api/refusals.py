"""The Teams alert of a refused model version: an Adaptive Card posted to TEAMS_WEBHOOK_URL.

Posted from a thread of its own (jobs/alerts.py's `send_alert`: retried, the webhook's secret kept
out of the logs), so a slow or dead webhook never delays the registry follower.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from core.settings import AlertSettings

if TYPE_CHECKING:
    from api.serving import Refusal

log = logging.getLogger(__name__)


def refusal_card(refusal: Refusal) -> dict[str, Any]:
    """The Teams Workflows message: an Adaptive Card 1.4 naming the version, the alias and why."""
    from jobs.alerts import build_model_refusal_card

    return build_model_refusal_card(
        title=f"Model version refused: the API does not serve it as {refusal.alias}", alias=refusal.alias,
        number=refusal.number, model_version=refusal.model_version, reason=refusal.reason,
        detail=refusal.detail, at=refusal.at, run_id=refusal.run_id,
        what_now="The current champion keeps serving. Move the alias to an admissible version "
                 "(python -m jobs.lifecycle promote/rollback) or fix this one.")


def alert_refusal(refusal: Refusal, settings: AlertSettings) -> threading.Thread:
    """Post the refusal's card in a daemon thread; returns it (tests join it). Never raises."""
    from jobs.alerts import send_alert

    def post() -> None:
        try:
            send_alert(refusal_card(refusal),
                       webhook_url=settings.teams_webhook_url.get_secret_value()
                       if settings.teams_webhook_url else None,
                       attempts=settings.teams_attempts, backoff_seconds=settings.teams_backoff_seconds,
                       timeout_seconds=settings.teams_timeout_seconds)
        except Exception:  # an alert that cannot be delivered is logged; serving goes on
            log.exception("the Teams alert of the refused version %s was not delivered",
                          refusal.model_version)

    thread = threading.Thread(target=post, name="refusal-alert", daemon=True)
    thread.start()
    return thread
