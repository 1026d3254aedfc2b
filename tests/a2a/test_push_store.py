"""The push registrations' store, on SQLite and on the real PostgreSQL: what every replica of the
A2A door shares (registrations, delivery cursors, one deliverer per task under a lease)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from a2a.types import a2a_pb2 as a2a

from hivemesh.a2a.push_store import PushStore, Registration
from hivemesh.mesh.sql import make_engine, sqlite_url
from tests.tasks.stores import postgres_database


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[PushStore]:
    store = PushStore(make_engine(url))
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "a2a.db")
        return
    async with postgres_database() as url:
        yield url


def registration(task_id: str, config_id: str, delivered: int = 1) -> Registration:
    config = a2a.TaskPushNotificationConfig(
        task_id=task_id, id=config_id, url="https://example.com/hook", token="secret"
    )
    return Registration(config, (("x-api-key", "hmk_a_b"),), delivered)


async def test_registrations_and_cursors_outlive_the_store_that_took_them(database: str) -> None:
    async with opened(database) as store:
        await store.add(registration("t1", "c1", delivered=3))
        await store.add(registration("t1", "c2", delivered=5))
        await store.delivered("t1", ["c1", "c2"], 4)
    async with opened(database) as store:
        found = await store.of_task("t1")
        assert [(r.config.id, r.delivered) for r in found] == [("c1", 4), ("c2", 5)]
        assert found[0].config.token == "secret"
        assert found[0].credentials == (("x-api-key", "hmk_a_b"),)
        await store.remove("t1", "c1")
        assert [r.config.id for r in await store.of_task("t1")] == ["c2"]


async def test_one_replica_at_a_time_delivers_a_task(database: str) -> None:
    async with opened(database) as store:
        await store.add(registration("t1", "c1"))
        now = time.time()
        assert await store.orphaned(now) == ["t1"]
        assert await store.claim("t1", "replica-a", now, now + 30)
        assert not await store.claim("t1", "replica-b", now, now + 30)
        assert await store.orphaned(now) == []
        # A webhook added meanwhile is adopted by the deliverer's next renewal.
        await store.add(registration("t1", "c2"))
        await store.renew("replica-a", ["t1"], now + 30)
        assert await store.orphaned(now) == []
        # The lease ran out (replica-a died): another replica takes the task over.
        assert await store.claim("t1", "replica-b", now + 31, now + 61)
        # Released as done, nothing is left to deliver; a new webhook wakes the task again.
        await store.release("replica-b", "t1", done=True, recheck_at=0.0)
        assert await store.orphaned(now + 100) == []
        await store.add(registration("t1", "c3"))
        assert await store.orphaned(now + 100) == ["t1"]
