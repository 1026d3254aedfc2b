from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hivemesh.mesh.sql import sqlite_url
from hivemesh.tool.idempotency import Claimed, Finished, IdempotencyStore, Running
from hivemesh.tool.model import ToolOutput
from hivemesh.tool.stores.redis import RedisIdempotencyStore
from hivemesh.tool.stores.sql import SqlIdempotencyStore

OUTPUT = ToolOutput({"value": 84.0, "items": ["a"]}, "84")


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IdempotencyStore]:
    chosen: SqlIdempotencyStore | RedisIdempotencyStore
    if request.param == "sqlite":
        chosen = SqlIdempotencyStore(sqlite_url(tmp_path / "tool.db"))
    else:
        url = os.environ.get("HIVEMESH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        chosen = RedisIdempotencyStore(url, prefix=f"test:tool:{uuid.uuid4().hex}:")
    await chosen.start()
    try:
        yield chosen
    finally:
        if isinstance(chosen, RedisIdempotencyStore):
            keys = [k async for k in chosen.client.scan_iter(match=f"{chosen.prefix}*")]
            if keys:
                await chosen.client.delete(*keys)
        await chosen.stop(1.0)


async def test_claim_finish_replay(store: IdempotencyStore) -> None:
    claim = await store.claim("k1", "fp", lease_s=30)
    assert isinstance(claim, Claimed)
    assert await store.claim("k1", "fp", lease_s=30) == Running("fp")
    await store.finish("k1", claim.token, OUTPUT, ttl_s=60)
    assert await store.claim("k1", "fp", lease_s=30) == Finished(OUTPUT, "fp")


async def test_release_lets_the_next_caller_run(store: IdempotencyStore) -> None:
    claim = await store.claim("k2", "fp", lease_s=30)
    assert isinstance(claim, Claimed)
    await store.release("k2", "someone else's token")
    assert isinstance(await store.claim("k2", "fp", lease_s=30), Running)
    await store.release("k2", claim.token)
    assert isinstance(await store.claim("k2", "fp", lease_s=30), Claimed)


async def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_finish(
    store: IdempotencyStore,
) -> None:
    stale = await store.claim("k3", "fp", lease_s=0.05)
    assert isinstance(stale, Claimed)
    await asyncio.sleep(0.15)
    fresh = await store.claim("k3", "fp", lease_s=30)
    assert isinstance(fresh, Claimed)
    await store.finish("k3", stale.token, ToolOutput({}, "stale"), ttl_s=60)
    assert isinstance(await store.claim("k3", "fp", lease_s=30), Running)
    await store.finish("k3", fresh.token, OUTPUT, ttl_s=60)
    assert await store.claim("k3", "fp", lease_s=30) == Finished(OUTPUT, "fp")


async def test_outcomes_expire(store: IdempotencyStore) -> None:
    claim = await store.claim("k4", "fp", lease_s=30)
    assert isinstance(claim, Claimed)
    await store.finish("k4", claim.token, OUTPUT, ttl_s=0.05)
    await asyncio.sleep(0.15)
    assert isinstance(await store.claim("k4", "fp", lease_s=30), Claimed)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_restarted_service_frees_only_what_its_dead_predecessor_left_pending(
    kind: str, tmp_path: Path
) -> None:
    prefix = f"test:tool:{uuid.uuid4().hex}:"

    def open_store(name: str | None) -> SqlIdempotencyStore | RedisIdempotencyStore:
        if kind == "sqlite":
            return SqlIdempotencyStore(sqlite_url(tmp_path / "tool.db"), name=name)
        url = os.environ.get("HIVEMESH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        return RedisIdempotencyStore(url, prefix=prefix, name=name)

    dead, peer = open_store("host:50055/tool"), open_store("host:60055/tool")
    await dead.start()
    await peer.start()
    running = await dead.claim("interrupted", "fp", lease_s=300)
    finished = await dead.claim("finished", "fp", lease_s=300)
    theirs = await peer.claim("peer's", "fp", lease_s=300)
    assert isinstance(running, Claimed)
    assert isinstance(finished, Claimed)
    assert isinstance(theirs, Claimed)
    await dead.finish("finished", finished.token, OUTPUT, ttl_s=300)
    # "dead" is killed: no stop, its claim stays pending with five minutes of lease left.
    successor = open_store("host:50055/tool")
    await successor.start()
    try:
        assert successor.freed_at_start == 1
        assert isinstance(await successor.claim("interrupted", "fp", lease_s=300), Claimed)
        assert await successor.claim("finished", "fp", lease_s=300) == Finished(OUTPUT, "fp")
        assert await successor.claim("peer's", "fp", lease_s=300) == Running("fp")
        # The dead incarnation's late outcome is refused: the key has a new holder.
        await dead.finish("interrupted", running.token, ToolOutput({}, "late"), ttl_s=300)
        assert await successor.claim("interrupted", "fp", lease_s=300) == Running("fp")
    finally:
        if isinstance(successor, RedisIdempotencyStore):
            keys = [k async for k in successor.client.scan_iter(match=f"{prefix}*")]
            if keys:
                await successor.client.delete(*keys)
        for store in (successor, peer, dead):
            await store.stop(1.0)
