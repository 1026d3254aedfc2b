"""A watcher of many tasks (the gateway's WatchTasks) waits on ANY_TOPIC: every wake-up of the
process reaches it, those another process shares through Redis included."""

from __future__ import annotations

import asyncio

import pytest

from hivemesh.tasks.notifier import ANY_TOPIC, InProcessNotifier
from tests.tasks.stores import linked_notifiers


async def test_any_wake_up_in_the_process_wakes_a_watcher_of_every_task() -> None:
    notifier = InProcessNotifier()
    woken = asyncio.create_task(notifier.wait(ANY_TOPIC, 60.0))
    await asyncio.sleep(0)
    assert not woken.done()
    notifier.notify("some-task")
    await asyncio.sleep(0)
    assert woken.done()
    # Nobody waiting: nothing is kept for a later waiter, which waits for the next one.
    later = asyncio.create_task(notifier.wait(ANY_TOPIC, 0.05))
    await asyncio.sleep(0.01)
    assert not later.done()
    await later  # its timeout


@pytest.mark.redis
async def test_a_wake_up_shared_by_another_process_wakes_a_watcher_of_every_task() -> None:
    async with linked_notifiers() as linked:
        # Woken, the wait ends long before its own 60 s; not woken, wait_for gives up first.
        woken = asyncio.create_task(asyncio.wait_for(linked.listener.wait(ANY_TOPIC, 60.0), 20.0))
        await asyncio.sleep(0)
        linked.sender.share("task-2", b"an event")
        await woken
