"""Micro-batching: concurrent requests share one model call, in a worker thread.

The worker takes the first waiting item at once and everything already queued behind it (never
more than ``max_batch`` items). While requests arrive together (the previous batch held more than
one), it also lingers up to ``max_wait_s`` for stragglers; after a lone request it does not, so a
lone request is never held back and at most ``max_wait_s`` is ever added. Under load, requests
pile up while a batch runs and the next batch leaves full, so throughput grows with concurrency.
The model runs in one dedicated thread: the event loop keeps serving and two batches never fight
over the same two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from hivemesh.mesh.errors import ResourceExhausted, Unavailable

T = TypeVar("T")
R = TypeVar("R")
_Queue = asyncio.Queue[tuple[T, asyncio.Future[R]]]


@dataclass(frozen=True)
class BatchConfig:
    max_batch: int = 64
    max_wait_s: float = 0.002
    # Items allowed to wait; beyond it callers get RESOURCE_EXHAUSTED instead of a growing delay.
    max_queue: int = 4096
    retry_after_s: float = 0.05


class MicroBatcher(Generic[T, R]):
    """``await submit(item)`` returns ``process([..., item, ...])[position]``.

    ``process`` must return one result per item, in order. ``on_batch`` sees each batch's size
    (for metrics and tests). A component: ``start`` before use, ``stop`` to drain.
    """

    def __init__(
        self,
        name: str,
        process: Callable[[Sequence[T]], Sequence[R]],
        config: BatchConfig | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.name = name
        self._process = process
        self._config = config or BatchConfig()
        self._on_batch = on_batch
        self._queue: _Queue[T, R] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._busy = False
        # Items of the batch being computed now.
        self._computing = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self._config.max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{self.name}")
        self._worker = asyncio.create_task(self._run(), name=f"batcher-{self.name}")

    async def stop(self, grace_s: float) -> None:
        if self._worker is None or self._queue is None:
            return
        # Let what is queued finish within the grace, then stop taking work.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=grace_s)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(Unavailable(f"{self.name} is shutting down", reason="SHUTTING_DOWN"))

    @property
    def pending(self) -> int:
        """Items waiting or being computed: the calls this batcher has in flight."""
        return self._computing + (0 if self._queue is None else self._queue.qsize())

    async def submit(self, item: T) -> R:
        if self._queue is None or self._worker is None:
            raise Unavailable(f"{self.name} is not running", reason="NOT_READY")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((item, future))
        except asyncio.QueueFull:
            raise ResourceExhausted(
                f"{self.name}: too many requests waiting",
                retry_after_s=self._config.retry_after_s,
                reason="LANGUAGE_OVERLOADED",
            ) from None
        return await future

    async def _gather(self, queue: _Queue[T, R]) -> list[tuple[T, asyncio.Future[R]]]:
        loop = asyncio.get_running_loop()
        batch = [await queue.get()]
        deadline = loop.time() + self._config.max_wait_s
        while len(batch) < self._config.max_batch:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0 or not self._busy:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), timeout=remaining))
            except TimeoutError:
                break
        self._busy = len(batch) > 1
        return batch

    async def _run(self) -> None:
        assert self._queue is not None  # set by start
        assert self._executor is not None
        queue, loop = self._queue, asyncio.get_running_loop()
        while True:
            batch = await self._gather(queue)
            # Callers that gave up (deadline, cancellation) are not worth computing for.
            live = [(item, future) for item, future in batch if not future.done()]
            try:
                if live:
                    if self._on_batch is not None:
                        self._on_batch(len(live))
                    items = [item for item, _ in live]
                    self._computing = len(items)
                    results = await loop.run_in_executor(self._executor, self._process, items)
                    for (_, future), result in zip(live, results, strict=True):
                        if not future.done():
                            future.set_result(result)
            except Exception as exc:  # the failure belongs to the callers of this batch, not to the worker
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
            finally:
                self._computing = 0
                for _ in batch:
                    queue.task_done()
