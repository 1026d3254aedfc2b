from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from hivemesh.mesh.config import Settings
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.system import TaskSystem
from tests.tasks.stores import REDIS_URL, postgres_database, redis_prefix


@pytest.fixture
async def tasks(settings: Settings) -> AsyncIterator[TaskSystem]:
    system = TaskSystem(settings, TaskConfig.from_env())
    await system.start()
    try:
        yield system
    finally:
        await system.stop(0)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.postgres]),
    ]
)
async def any_tasks(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[TaskSystem]:
    """The task system on each adapter: SQLite (embedded), PostgreSQL with the SQL queue, and
    PostgreSQL with the Redis Streams queue (distributed)."""
    if request.param == "sqlite":
        system = TaskSystem(settings, TaskConfig.from_env())
        await system.start()
        try:
            yield system
        finally:
            await system.stop(0)
        return
    async with postgres_database() as url, redis_prefix() as prefix:
        redis_url = REDIS_URL if request.param == "redis" else None
        system = TaskSystem(
            replace(settings, database_url=url, redis_url=redis_url),
            TaskConfig(redis_prefix=prefix, sweep_interval_s=0),
        )
        await system.start()
        try:
            yield system
        finally:
            await system.stop(0)
