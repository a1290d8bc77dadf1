"""A real local HTTP server standing in for the Teams Workflows webhook (Teams is outside the machine)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class FakeTeamsWebhook:
    """Records every posted message; answers with `statuses` in turn, then the last one forever."""

    url: str = ""
    statuses: list[int] = field(default_factory=lambda: [202])
    received: list[dict[str, Any]] = field(default_factory=list)

    def next_status(self) -> int:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


def start_webhook() -> tuple[FakeTeamsWebhook, ThreadingHTTPServer]:
    webhook = FakeTeamsWebhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            webhook.received.append(json.loads(body))
            status = webhook.next_status()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    webhook.url = f"http://127.0.0.1:{server.server_address[1]}/workflows/ingestion-alerts"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return webhook, server


@pytest.fixture
def teams_webhook() -> Iterator[FakeTeamsWebhook]:
    webhook, server = start_webhook()
    yield webhook
    server.shutdown()
    server.server_close()
