"""Headless Chromium (Debian's ``chromium`` package, driven by Playwright) against the console of a
real mesh. Browser downloads are not possible here: Playwright is pointed at the installed browser."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from hivemesh.mesh.config import Settings
from tests.edge.conftest import ServedEdge, serve_edge

CHROMIUM = os.environ.get("HIVEMESH_TEST_CHROMIUM", "/usr/bin/chromium")
# Where the browser tests save the screenshots of each page (docs/console in the repository
# when refreshing them); a temporary directory otherwise.
SCREENSHOTS_ENV = "HIVEMESH_CONSOLE_SCREENSHOTS"


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    target = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def edge(settings: Settings) -> AsyncIterator[ServedEdge]:
    """The whole mesh with the edge (and so the console) in front of it."""
    async with serve_edge(settings) as served:
        yield served
