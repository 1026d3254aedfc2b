"""Concurrency limits of two kinds, named for what they do when full.

``RefusingBulkhead`` refuses at once: a caller told RESOURCE_EXHAUSTED with a retry delay can go
elsewhere, while a queue behind a slow tool, a busy server or a greedy tenant only grows its
latency. Used where calls arrive (a tool's calls, a server's calls, a tenant's calls).

``WaitingBulkhead`` waits for a slot within the caller's deadline: used where calls leave (the
planner's calls to each downstream service), so a slow or failing service holds at most its share
of the planner's calls and the others keep flowing, while a short burst still gets through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from hivemesh.mesh import deadlines
from hivemesh.mesh.errors import ResourceExhausted


@dataclass
class RefusingBulkhead:
    limit: int
    running: int = 0

    def try_enter(self) -> bool:
        if self.running >= self.limit:
            return False
        self.running += 1
        return True

    def leave(self) -> None:
        self.running -= 1


class WaitingBulkhead:
    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a free slot, at most as long as the current deadline allows."""
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=deadlines.remaining())
        except TimeoutError:
            raise ResourceExhausted(
                f"all {self.limit} calls to the {self.name} service are busy",
                retry_after_s=0.5,
                reason="DOWNSTREAM_BUSY",
                metadata={"service": self.name, "limit": str(self.limit)},
            ) from None
        try:
            yield
        finally:
            self._slots.release()
