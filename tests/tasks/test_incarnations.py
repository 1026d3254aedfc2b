"""Worker incarnations on every adapter: a restarted or silent worker's claims are taken over at
once, not when their leases run out."""

from __future__ import annotations

import asyncio

from hivemesh.tasks.system import TaskSystem
from tests.tasks.test_log import new_task

LONG_LEASE_S = 120.0


async def test_a_restarted_worker_takes_back_its_predecessors_claims_at_once(any_tasks: TaskSystem) -> None:
    queue = any_tasks.queue
    await queue.join("old", "host:50052")
    await queue.join("peer", "host:50099")
    mine, _ = await any_tasks.submit(new_task(), trace={})
    theirs, _ = await any_tasks.submit(new_task(), trace={})
    first = await queue.claim("old", LONG_LEASE_S)
    other = await queue.claim("peer", LONG_LEASE_S)
    assert first is not None
    assert other is not None
    assert {first.task_id, other.task_id} == {mine.task_id, theirs.task_id}
    assert await queue.claim("new", LONG_LEASE_S) is None  # both leased for two minutes

    assert await queue.join("new", "host:50052") == 1  # the same name: "old" died
    again = await queue.claim("new", LONG_LEASE_S)
    assert again is not None
    assert (again.task_id, again.delivery_count) == (first.task_id, 2)
    assert await queue.claim("new", LONG_LEASE_S) is None  # the peer's claim is untouched
    # The dead incarnation can no longer acknowledge or renew what it held.
    assert not await queue.extend(first.task_id, "old", LONG_LEASE_S)
    await queue.ack(first.task_id, "old")
    assert await queue.depth() == 2
    assert not await queue.beat("old")
    await queue.ack(again.task_id, "new")
    await queue.ack(other.task_id, "peer")
    assert await queue.depth() == 0


async def test_a_silent_worker_is_declared_dead_and_a_beating_one_is_not(any_tasks: TaskSystem) -> None:
    queue = any_tasks.queue
    await queue.join("silent", "a")
    await queue.join("alive", "b")
    for _ in range(2):
        await any_tasks.submit(new_task(), trace={})
    assert await queue.claim("silent", LONG_LEASE_S) is not None
    assert await queue.claim("alive", LONG_LEASE_S) is not None
    await asyncio.sleep(0.3)
    assert await queue.beat("alive")
    assert await queue.reap(silent_for_s=0.2) == 1
    taken = await queue.claim("third", LONG_LEASE_S)
    assert taken is not None
    assert taken.delivery_count == 2
    assert await queue.claim("third", LONG_LEASE_S) is None  # "alive" still holds its task
    # Declared dead while it was only paused: its beat says so, and it joins again.
    assert not await queue.beat("silent")
    assert await queue.join("silent", "a") == 0
    assert await queue.beat("silent")


async def test_leaving_gives_back_the_claims_still_held(any_tasks: TaskSystem) -> None:
    queue = any_tasks.queue
    await queue.join("w", "name")
    await any_tasks.submit(new_task(), trace={})
    claim = await queue.claim("w", LONG_LEASE_S)
    assert claim is not None
    await queue.leave("w")
    again = await queue.claim("w2", LONG_LEASE_S)
    assert again is not None
    assert again.task_id == claim.task_id
    assert not await queue.beat("w")
