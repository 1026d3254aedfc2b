from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from hivemesh.language.batching import BatchConfig, MicroBatcher
from hivemesh.mesh.errors import ResourceExhausted, Unavailable


def double(items: Sequence[int]) -> list[int]:
    return [2 * i for i in items]


async def test_concurrent_calls_share_batches() -> None:
    sizes: list[int] = []
    batcher = MicroBatcher("t", double, BatchConfig(max_batch=8, max_wait_s=0.05), sizes.append)
    await batcher.start()
    try:
        results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
    finally:
        await batcher.stop(1.0)
    assert results == [2 * i for i in range(20)]
    assert sizes == [8, 8, 4]


async def test_lone_call_runs_alone_and_is_not_held_for_company() -> None:
    sizes: list[int] = []
    # A generous bound: a lone call that waited for it would still pass, so the batch sizes tell.
    batcher = MicroBatcher("t", double, BatchConfig(max_batch=8, max_wait_s=30.0), sizes.append)
    await batcher.start()
    try:
        assert await asyncio.wait_for(batcher.submit(21), timeout=10.0) == 42
        assert await asyncio.wait_for(batcher.submit(1), timeout=10.0) == 2
    finally:
        await batcher.stop(1.0)
    assert sizes == [1, 1]


async def test_failure_reaches_every_caller_of_the_batch() -> None:
    def broken(items: Sequence[int]) -> list[int]:
        raise ValueError("model failed")

    batcher = MicroBatcher("t", broken, BatchConfig(max_batch=4))
    await batcher.start()
    try:
        results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
        assert all(isinstance(r, ValueError) for r in results)
        with pytest.raises(ValueError, match="model failed"):
            await batcher.submit(3)
    finally:
        await batcher.stop(1.0)


async def test_full_queue_is_resource_exhausted() -> None:
    batcher = MicroBatcher("t", double, BatchConfig(max_batch=1, max_queue=2))
    await batcher.start()
    try:
        calls = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
        results = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await batcher.stop(1.0)
    errors = [r for r in results if isinstance(r, ResourceExhausted)]
    assert len(errors) == 1
    assert errors[0].reason == "LANGUAGE_OVERLOADED"
    assert errors[0].retry_after_s > 0


async def test_submit_before_start_is_unavailable() -> None:
    batcher = MicroBatcher("t", double)
    with pytest.raises(Unavailable) as caught:
        await batcher.submit(1)
    assert caught.value.reason == "NOT_READY"
