"""A bulkhead per downstream service: a slow or failing service can hold at most its share of the
planner's calls, so the others keep flowing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from hivemesh.mesh import deadlines
from hivemesh.mesh.errors import ResourceExhausted


class Bulkhead:
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
