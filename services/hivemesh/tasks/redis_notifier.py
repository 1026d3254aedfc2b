"""Wake-ups across processes through Redis pub/sub (distributed mode).

A notification is published on ``<prefix>:wake:<topic>``; every process listens on the pattern and
wakes its local waiters. Pub/sub is fire-and-forget and that is enough: a wake-up is only a hint,
the log and the queue are read again after it, and a lost one costs one poll interval. A task's
wake-up may carry the event just committed; ``on_event`` hands it to this process's log, whose
watchers use it only where it continues what they have seen (so a lost or reordered message
costs a read from the database, never a gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hivemesh.tasks.notifier import InProcessNotifier

_log = logging.getLogger(__name__)


class RedisNotifier:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._channel = f"{prefix}:wake:"
        self._local = InProcessNotifier()
        self._listener: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self._pending: list[tuple[str, bytes]] = []
        self.on_event: Callable[[bytes], None] | None = None

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="task-wakeups")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._publishing:
            await asyncio.wait(set(self._publishing), timeout=1.0)

    def notify(self, topic: str) -> None:
        self.share(topic, b"")

    def share(self, topic: str, event: bytes) -> None:
        self._local.notify(topic)
        self._pending.append((self._channel + topic, event))
        if len(self._pending) > 1:
            return  # a flush is already on its way and takes this one too
        try:
            job = asyncio.get_running_loop().create_task(self._publish())
        except RuntimeError:  # no loop: nothing is waiting in this process either
            self._pending.clear()
            return
        self._publishing.add(job)
        job.add_done_callback(self._publishing.discard)

    async def _publish(self) -> None:
        """Publish what is pending, as one pipeline: the wake-ups of a group commit (and of
        anything else shared in the meantime) cost one round trip to Redis, not one each."""
        await asyncio.sleep(0)  # let the rest of this turn of the loop share its wake-ups too
        pending, self._pending = self._pending, []
        try:
            if len(pending) == 1:
                await self._redis.publish(*pending[0])
                return
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel, event in pending:
                    pipe.publish(channel, event)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            _log.debug("%d wake-ups not published: %s", len(pending), exc)

    async def wait(self, topic: str, timeout_s: float) -> None:
        await self._local.wait(topic, timeout_s)

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._channel + "*")
                delay = 0.1
                async for message in pubsub.listen():
                    channel = message.get("channel")
                    if isinstance(channel, bytes):
                        channel = channel.decode()
                    data = message.get("data")
                    if data and isinstance(data, bytes) and self.on_event is not None:
                        self.on_event(data)
                    if isinstance(channel, str):
                        self._local.notify(channel.removeprefix(self._channel))
            except (RedisError, OSError) as exc:
                _log.warning("task wake-ups lost their Redis connection (%s); polling until it is back", exc)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # untyped before redis-py 6
