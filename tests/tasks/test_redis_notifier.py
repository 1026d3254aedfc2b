"""Wake-ups through Redis pub/sub: what one process shares reaches the others, a burst of them in one
pipeline, with the events they carry."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from hivemesh.tasks.redis_notifier import RedisNotifier
from tests.tasks.stores import REDIS_URL, redis_prefix

pytestmark = pytest.mark.redis


async def test_a_burst_of_shared_events_reaches_another_process_whole() -> None:
    async with redis_prefix() as prefix:
        sender_redis, listener_redis = aioredis.Redis.from_url(REDIS_URL), aioredis.Redis.from_url(REDIS_URL)
        sender, listener = RedisNotifier(sender_redis, prefix), RedisNotifier(listener_redis, prefix)
        heard: list[bytes] = []
        listener.on_event = heard.append
        await listener.start()
        try:
            for _ in range(100):  # until the listener's subscription is in place
                sender.share("probe", b"probe")
                await asyncio.sleep(0.05)
                if heard:
                    break
            await asyncio.sleep(0.1)
            heard.clear()
            woken = asyncio.create_task(listener.wait("task-49", 5.0))
            await asyncio.sleep(0)
            for n in range(50):  # one turn of the loop, as a group commit shares its events
                sender.share(f"task-{n}", f"event-{n}".encode())
            sender.notify("queue")
            await asyncio.wait_for(woken, 5.0)
            for _ in range(100):
                if len(heard) == 50:
                    break
                await asyncio.sleep(0.02)
            assert heard == [f"event-{n}".encode() for n in range(50)]
        finally:
            await listener.stop()
            await sender.stop()
            await sender_redis.aclose()
            await listener_redis.aclose()
