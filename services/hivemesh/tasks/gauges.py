"""Queue depth and dead-letter count for the dashboards, sampled in the background so a scrape
never waits on the queue's store."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hivemesh.mesh.metrics import Metrics
from hivemesh.tasks.queue import TaskQueue

_log = logging.getLogger(__name__)


class QueueGauges:
    """Sets ``hivemesh_queue_depth`` and ``hivemesh_dead_letters`` every ``interval_s``."""

    def __init__(self, queue: TaskQueue, metrics: Metrics, *, interval_s: float = 2.0) -> None:
        self._queue = queue
        self._metrics = metrics
        self._interval = interval_s
        self._job: asyncio.Task[None] | None = None

    async def sample(self) -> None:
        self._metrics.queue_depth.set(await self._queue.depth())
        self._metrics.dead_letters.set(await self._queue.dead_count())

    async def start(self) -> None:
        self._job = asyncio.create_task(self._run(), name="queue-gauges")

    async def stop(self, grace_s: float) -> None:
        if self._job is not None:
            self._job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._job

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:
                _log.debug("sampling the queue gauges failed: %s", exc)
            await asyncio.sleep(self._interval)
