"""Headless Chromium (Debian's ``chromium`` package, driven by Playwright) against the console of a
real mesh. Browser downloads are not possible here: Playwright is pointed at the installed browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
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


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the tests of a module (each opens its own page): starting it
    costs a second or two. A module using it runs its tests in one event loop, the browser's."""
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


@dataclass
class Up:
    """``hivemesh up`` in its own process: the console's address and what the command printed."""

    url: str
    output: Path
    trace_file: Path


class Booting:
    """``hivemesh up`` started in its own process and not yet waited for: it boots while other
    tests run (it takes seconds), and ``ready`` waits until its edge serves."""

    def __init__(self, process: subprocess.Popen[bytes], output: Path, trace_file: Path) -> None:
        self.process = process
        self._output = output
        self._trace_file = trace_file

    def ready(self, timeout_s: float = 90.0) -> Up:
        deadline = time.monotonic() + timeout_s
        pattern = r"edge serving HTTP on 127\.0\.0\.1:(\d+)"
        while (found := re.search(pattern, self._output.read_text())) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"hivemesh up did not start:\n{self._output.read_text()}")
            time.sleep(0.1)
        return Up(f"http://127.0.0.1:{found.group(1)}", self._output, self._trace_file)


@pytest.fixture(scope="module")
def booting_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booting]:
    """``hivemesh up`` as a user starts it, on free ports, writing its spans to a file."""
    directory = tmp_path_factory.mktemp("up")
    output = directory / "up.log"
    trace_file = directory / "spans.jsonl"
    env = {
        **os.environ,
        "HIVEMESH_DATA_DIR": str(directory / "data"),
        "HIVEMESH_METRICS_PORT": "off",
        "HIVEMESH_EDGE_PORT": "0",
        "HIVEMESH_TRACE_FILE": str(trace_file),
        **{f"HIVEMESH_{s.upper()}_PORT": "0" for s in ("gateway", "planner", "language", "memory", "tool")},
    }
    env.pop("HIVEMESH_AUTH", None)
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "hivemesh.cli", "up"], env=env, stderr=sink, stdout=sink
        )
    try:
        yield Booting(process, output, trace_file)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def hivemesh_up(booting_up: Booting) -> Up:
    """``hivemesh up``, serving (see ``booting_up``)."""
    return booting_up.ready()
