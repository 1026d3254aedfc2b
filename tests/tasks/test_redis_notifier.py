"""Wake-ups through Redis pub/sub: what one process shares reaches the others, a burst of them in one
pipeline, with the events they carry."""

from __future__ import annotations

import asyncio

import pytest

from tests.tasks.stores import linked_notifiers

pytestmark = pytest.mark.redis


async def test_a_burst_of_shared_events_reaches_another_process_whole() -> None:
    async with linked_notifiers() as linked:
        woken = asyncio.create_task(linked.listener.wait("task-49", 5.0))
        await asyncio.sleep(0)
        for n in range(50):  # one turn of the loop, as a group commit shares its events
            linked.sender.share(f"task-{n}", f"event-{n}".encode())
        linked.sender.notify("queue")
        await asyncio.wait_for(woken, 5.0)
        for _ in range(100):
            if len(linked.heard) == 50:
                break
            await asyncio.sleep(0.02)
        assert linked.heard == [f"event-{n}".encode() for n in range(50)]
