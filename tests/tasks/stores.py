"""Real PostgreSQL and Redis for the task tests: a fresh database, a unique key prefix per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from hivemesh.tasks.redis_notifier import RedisNotifier

REDIS_URL = os.environ.get("HIVEMESH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("HIVEMESH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A new, empty database for one test; dropped afterwards. Yields its URL."""
    name = f"hm_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def redis_prefix(url: str = REDIS_URL) -> AsyncIterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"hmtest:{uuid.uuid4().hex[:12]}:{{tasks}}"
    try:
        yield prefix
    finally:
        client = aioredis.Redis.from_url(url)
        try:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@dataclass
class LinkedNotifiers:
    """Two processes' wake-ups through one Redis: what ``sender`` shares, ``listener`` hears
    (the events it carries collected in ``heard``)."""

    sender: RedisNotifier
    listener: RedisNotifier
    heard: list[bytes]


@contextlib.asynccontextmanager
async def linked_notifiers() -> AsyncIterator[LinkedNotifiers]:
    """A sender and a listener on a fresh prefix, the listener's subscription in place and what it
    heard while getting there forgotten."""
    async with redis_prefix() as prefix:
        sender_redis, listener_redis = aioredis.Redis.from_url(REDIS_URL), aioredis.Redis.from_url(REDIS_URL)
        sender, listener = RedisNotifier(sender_redis, prefix), RedisNotifier(listener_redis, prefix)
        linked = LinkedNotifiers(sender, listener, [])
        linked.listener.on_event = linked.heard.append
        await linked.listener.start()
        try:
            for _ in range(100):  # until the listener's subscription is in place
                linked.sender.share("probe", b"probe")
                await asyncio.sleep(0.05)
                if linked.heard:
                    break
            await asyncio.sleep(0.1)
            linked.heard.clear()
            yield linked
        finally:
            await linked.listener.stop()
            await linked.sender.stop()
            await sender_redis.aclose()
            await listener_redis.aclose()
