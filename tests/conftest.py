from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hivemesh.mesh.config import Settings
from tests.support import RunningMesh, make_settings, start_mesh


@pytest.fixture(autouse=True)
def _unauthenticated_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gateways built from the environment in tests run without authentication; the security
    tests build theirs with authentication required explicitly."""
    monkeypatch.setenv("HIVEMESH_AUTH", "none")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
async def mesh(settings: Settings) -> AsyncIterator[RunningMesh]:
    running = await start_mesh(settings)
    try:
        yield running
    finally:
        await running.stop()
