"""Wake-ups for watchers and idle workers. A notification is only a hint to look again: the log
and the queue in the database are the truth, so a missed wake-up costs at most one poll interval."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

QUEUE_TOPIC = "__queue__"
# Told of every notification in this process (those heard from other processes included): a
# watcher of many tasks waits on it and looks again.
ANY_TOPIC = "__any__"


def ending_topic(task_id: str) -> str:
    """Told when a task is ended from outside its run (canceled): its worker stops at once."""
    return f"{task_id}:ended"


class Notifier(Protocol):
    def notify(self, topic: str) -> None: ...

    def share(self, topic: str, event: bytes) -> None:
        """``notify``, handing the committed event (its bytes) along to watchers in other
        processes, who then need not read it back from the database."""
        ...

    async def wait(self, topic: str, timeout_s: float) -> None: ...


class InProcessNotifier:
    """Notifications between coroutines of one process (the embedded mesh)."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def notify(self, topic: str) -> None:
        event = self._events.pop(topic, None)
        if event is not None:
            event.set()
        anyone = self._events.pop(ANY_TOPIC, None)
        if anyone is not None:
            anyone.set()

    def share(self, topic: str, event: bytes) -> None:
        self.notify(topic)  # one process: its watchers read the event from its own log's memory

    async def wait(self, topic: str, timeout_s: float) -> None:
        event = self._events.setdefault(topic, asyncio.Event())
        # A timeout in place (no task of its own, unlike wait_for): a watcher waits once per event.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()
