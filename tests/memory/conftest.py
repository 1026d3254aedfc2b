from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.memory.harness import DISTRIBUTED, EMBEDDED, MemoryUnderTest, memory_service


@pytest.fixture(
    params=[
        pytest.param(EMBEDDED, id="sqlite-edge"),
        pytest.param(
            DISTRIBUTED,
            id="redis-postgres-qdrantclient",
            marks=[
                pytest.mark.redis,
                pytest.mark.postgres,
                # qdrant-client's local mode (standing in for a server) searches exactly and says so.
                pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning"),
            ],
        ),
    ]
)
async def memory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MemoryUnderTest]:
    async with memory_service(tmp_path / "data", request.param) as running:
        yield running


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[MemoryUnderTest]:
    async with memory_service(tmp_path / "data", EMBEDDED) as running:
        yield running
