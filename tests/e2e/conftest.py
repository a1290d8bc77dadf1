"""Fixtures of the end-to-end tests: one Chromium per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import fail_cannot_run


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright; a missing Chromium fails the test, naming it."""
    if not CHROMIUM.exists():
        fail_cannot_run(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
