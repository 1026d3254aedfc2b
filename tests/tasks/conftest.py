from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hivemesh.mesh.config import Settings
from hivemesh.tasks.system import TaskSystem


@pytest.fixture
async def tasks(settings: Settings) -> AsyncIterator[TaskSystem]:
    system = TaskSystem(settings)
    await system.start()
    try:
        yield system
    finally:
        await system.stop(0)
