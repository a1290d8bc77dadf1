"""The reports folder served at /reports: the Data Docs pages the ingestion job writes.

Their content comes from customer files (cell values, column and file names). The ingestion job
escapes it (jobs/alerts.py); as a second line of defence every page is sent with a
Content-Security-Policy that runs no script at all (inline, injected or from a CDN), loads
nothing but styles, fonts and images, and cannot be framed or submit forms. The pages' content
is rendered on the server, so it reads the same; only Data Docs' interactive widgets (expanders,
table filters, which pull jQuery and Bootstrap from CDNs) stay off. Headers after the OWASP
Secure Headers Project's recommendations (https://owasp.org/www-project-secure-headers/).
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

REPORT_CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'none'",
    "object-src 'none'",
    "style-src 'self' 'unsafe-inline' https:",
    "font-src 'self' https: data:",
    "img-src 'self' https: data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))
REPORT_HEADERS = {
    "Content-Security-Policy": REPORT_CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class ReportFiles(StaticFiles):
    """StaticFiles whose every file (pages, styles, redirects) is sent with REPORT_HEADERS."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(REPORT_HEADERS)
        return response
