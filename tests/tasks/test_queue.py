from __future__ import annotations

import asyncio

from hivemesh.mesh.sql import transactions_committed
from hivemesh.tasks import schema
from hivemesh.tasks.queue import backoff
from hivemesh.tasks.system import TaskSystem
from tests.tasks.test_log import new_task


async def test_claim_ack_removes_the_task(tasks: TaskSystem) -> None:
    task, _ = await tasks.log.submit(new_task(), trace={"traceparent": "00-abc-def-01"}, now=0)
    claim = await tasks.queue.claim("w1", 30)
    assert claim is not None
    assert claim.task_id == task.task_id
    assert claim.delivery_count == 1
    assert claim.trace == {"traceparent": "00-abc-def-01"}
    assert await tasks.queue.claim("w2", 30) is None  # leased to w1
    await tasks.queue.ack(task.task_id, "w1")
    assert await tasks.queue.depth() == 0


async def test_an_expired_lease_is_claimed_again_with_a_higher_delivery_count(tasks: TaskSystem) -> None:
    await tasks.log.submit(new_task(), trace={}, now=0)
    first = await tasks.queue.claim("w1", 0.05)
    assert first is not None
    await asyncio.sleep(0.1)
    second = await tasks.queue.claim("w2", 30)
    assert second is not None
    assert second.task_id == first.task_id
    assert second.delivery_count == 2
    # The first worker lost its lease: its acknowledgement does not remove the task.
    await tasks.queue.ack(first.task_id, "w1")
    assert await tasks.queue.depth() == 1


async def test_concurrent_claims_never_hand_out_one_task_twice(tasks: TaskSystem) -> None:
    for _ in range(10):
        await tasks.log.submit(new_task(), trace={}, now=0)
    claims = await asyncio.gather(*(tasks.queue.claim(f"w{i}", 30) for i in range(15)))
    claimed = [c.task_id for c in claims if c is not None]
    assert len(claimed) == 10
    assert len(set(claimed)) == 10


async def test_retry_delays_and_dead_letter_then_replay(tasks: TaskSystem) -> None:
    task, _ = await tasks.log.submit(new_task(), trace={}, now=0)
    claim = await tasks.queue.claim("w1", 30)
    assert claim is not None
    await tasks.queue.retry(task.task_id, "w1", 60, "downstream unavailable")
    assert await tasks.queue.claim("w1", 30) is None  # not before its backoff
    await tasks.queue.replay(task.task_id)  # only dead letters are replayed
    assert await tasks.queue.claim("w1", 30) is None
    async with tasks.engine.begin() as conn:
        await conn.execute(schema.queue.update().values(available_at=0))
    claim = await tasks.queue.claim("w1", 30)
    assert claim is not None
    assert claim.delivery_count == 2
    await tasks.queue.dead_letter(task.task_id, "w1", "POISON: always fails")
    assert await tasks.queue.depth() == 0
    dead = await tasks.queue.dead_letters()
    assert [(d.task_id, d.last_error) for d in dead] == [(task.task_id, "POISON: always fails")]
    assert await tasks.queue.replay(task.task_id)
    again = await tasks.queue.claim("w2", 30)
    assert again is not None
    assert again.task_id == task.task_id
    assert again.delivery_count == 1


def test_backoff_is_bounded_and_grows() -> None:
    assert all(0 <= backoff(1) <= 0.5 for _ in range(100))
    assert all(0 <= backoff(10, cap_s=30) <= 30 for _ in range(100))
    assert max(backoff(5) for _ in range(200)) > 0.5


async def test_a_claim_on_an_empty_queue_takes_no_write_transaction(tasks: TaskSystem) -> None:
    before = transactions_committed()
    assert await tasks.queue.claim("w1", 30) is None
    assert transactions_committed() == before
    task, _ = await tasks.log.submit(new_task(), trace={}, now=0)
    before = transactions_committed()
    claim = await tasks.queue.claim("w1", 30)
    assert claim is not None
    assert claim.task_id == task.task_id
    assert transactions_committed() == before + 1
    # Leased: the next claim finds nothing ready, again without writing.
    assert await tasks.queue.claim("w2", 30) is None
    assert transactions_committed() == before + 1
