"""Debian's Chromium for the browser tests (never a downloaded browser): where it is, how it starts.

The flags are the ones this workplace's machines need: headless, no sandbox as root, and no
background networking (the closed network refuses those connections, many at a time).
"""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
