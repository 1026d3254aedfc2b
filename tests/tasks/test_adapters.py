"""The queue port and the log on every adapter: SQLite, PostgreSQL (SQL queue), Redis Streams."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import inspect, update

from hivemesh.common.v1.task_pb2 import TaskEvent, TaskState
from hivemesh.tasks import schema
from hivemesh.tasks.system import TaskSystem
from tests.tasks.test_log import new_task


async def test_submit_claim_ack(any_tasks: TaskSystem) -> None:
    task, existing = await any_tasks.submit(new_task(), trace={"traceparent": "00-abc-def-01"})
    assert not existing
    assert await any_tasks.queue.depth() == 1
    claim = await any_tasks.queue.claim("w1", 30)
    assert claim is not None
    assert (claim.task_id, claim.tenant_id, claim.delivery_count) == (task.task_id, "acme", 1)
    assert claim.trace == {"traceparent": "00-abc-def-01"}
    assert await any_tasks.queue.claim("w2", 30) is None  # leased to w1
    assert await any_tasks.queue.extend(task.task_id, "w1", 30)
    assert not await any_tasks.queue.extend(task.task_id, "w2", 30)  # not w2's claim
    await any_tasks.queue.ack(task.task_id, "w1")
    assert await any_tasks.queue.depth() == 0
    assert await any_tasks.queue.claim("w2", 30) is None


async def test_same_request_id_is_one_task_and_one_queue_entry(any_tasks: TaskSystem) -> None:
    results = await asyncio.gather(*(any_tasks.submit(new_task("same"), trace={}) for _ in range(6)))
    assert len({task.task_id for task, _ in results}) == 1
    assert sum(1 for _, existing in results if not existing) == 1
    assert await any_tasks.queue.depth() == 1
    assert await any_tasks.queue.claim("w1", 30) is not None
    assert await any_tasks.queue.claim("w2", 30) is None


async def test_a_dead_workers_claim_is_taken_over_after_the_visibility_timeout(any_tasks: TaskSystem) -> None:
    await any_tasks.submit(new_task(), trace={})
    first = await any_tasks.queue.claim("w1", 0.2)
    assert first is not None
    assert await any_tasks.queue.claim("w2", 0.2) is None  # still leased
    await asyncio.sleep(0.3)
    second = await any_tasks.queue.claim("w2", 30)
    assert second is not None
    assert second.task_id == first.task_id
    assert second.delivery_count == 2
    # The first worker lost its claim: its acknowledgement and its retry change nothing.
    await any_tasks.queue.ack(first.task_id, "w1")
    await any_tasks.queue.retry(first.task_id, "w1", 0, "late")
    assert await any_tasks.queue.depth() == 1
    assert await any_tasks.queue.claim("w3", 30) is None
    await any_tasks.queue.ack(second.task_id, "w2")
    assert await any_tasks.queue.depth() == 0


async def test_a_renewed_claim_is_not_taken_over(any_tasks: TaskSystem) -> None:
    await any_tasks.submit(new_task(), trace={})
    first = await any_tasks.queue.claim("w1", 0.3)
    assert first is not None
    for _ in range(4):
        await asyncio.sleep(0.15)
        assert await any_tasks.queue.extend(first.task_id, "w1", 0.3)
        assert await any_tasks.queue.claim("w2", 0.3) is None


async def test_concurrent_claims_never_hand_out_one_task_twice(any_tasks: TaskSystem) -> None:
    for _ in range(10):
        await any_tasks.submit(new_task(), trace={})
    claims = await asyncio.gather(*(any_tasks.queue.claim(f"w{i}", 30) for i in range(15)))
    claimed = [c.task_id for c in claims if c is not None]
    assert len(claimed) == 10
    assert len(set(claimed)) == 10


async def test_retry_waits_for_its_backoff(any_tasks: TaskSystem) -> None:
    task, _ = await any_tasks.submit(new_task(), trace={})
    assert await any_tasks.queue.claim("w1", 30) is not None
    await any_tasks.queue.retry(task.task_id, "w1", 0.3, "downstream unavailable")
    assert await any_tasks.queue.claim("w1", 30) is None  # not before its backoff
    assert await any_tasks.queue.depth() == 1
    await asyncio.sleep(0.4)
    again = await any_tasks.queue.claim("w2", 30)
    assert again is not None
    assert again.delivery_count == 2


async def test_dead_letters_list_by_tenant_replay_and_purge(any_tasks: TaskSystem) -> None:
    dead = []
    for tenant in ("acme", "acme", "globex"):
        task, _ = await any_tasks.submit(new_task(tenant=tenant), trace={})
        claim = await any_tasks.queue.claim("w1", 30)
        assert claim is not None
        assert claim.task_id == task.task_id
        await any_tasks.queue.dead_letter(task.task_id, "w1", f"POISON: {tenant}")
        dead.append(task.task_id)
    assert await any_tasks.queue.depth() == 0
    assert await any_tasks.queue.claim("w2", 30) is None
    everything = await any_tasks.queue.dead_letters()
    assert sorted(d.task_id for d in everything) == sorted(dead)
    acme = await any_tasks.queue.dead_letters(tenant_id="acme")
    assert sorted(d.task_id for d in acme) == sorted(dead[:2])
    assert {d.last_error for d in acme} == {"POISON: acme"}
    first_page = await any_tasks.queue.dead_letters(limit=2)
    rest = await any_tasks.queue.dead_letters(
        limit=2, after=(first_page[-1].enqueued_at, first_page[-1].task_id)
    )
    assert [d.task_id for d in first_page + rest] == [d.task_id for d in everything]
    shown = await any_tasks.queue.dead_letter_of(dead[0])
    assert shown is not None
    assert shown.delivery_count == 1

    assert await any_tasks.queue.replay(dead[0])
    assert not await any_tasks.queue.replay(dead[0])  # no longer dead
    again = await any_tasks.queue.claim("w2", 30)
    assert again is not None
    assert (again.task_id, again.delivery_count) == (dead[0], 1)

    assert await any_tasks.queue.purge(dead[2], tenant_id="acme") == 0  # not acme's
    assert await any_tasks.queue.purge(tenant_id="acme") == 1
    assert [d.task_id for d in await any_tasks.queue.dead_letters()] == [dead[2]]
    assert await any_tasks.queue.purge() == 1
    assert await any_tasks.queue.dead_letters() == []


async def test_a_canceled_queued_task_is_never_delivered(any_tasks: TaskSystem) -> None:
    task, _ = await any_tasks.submit(new_task(), trace={})
    await any_tasks.queue.remove(task.task_id)
    assert await any_tasks.queue.depth() == 0
    assert await any_tasks.queue.claim("w1", 30) is None


async def test_a_follow_up_answer_queues_the_task_again(any_tasks: TaskSystem) -> None:
    task, _ = await any_tasks.submit(new_task(), trace={})
    claim = await any_tasks.queue.claim("w1", 30)
    assert claim is not None
    asked = TaskEvent()
    asked.input_requested.question = "which unit?"
    await any_tasks.log.append(task.task_id, asked)
    await any_tasks.queue.ack(task.task_id, "w1")
    answer = TaskEvent()
    answer.input_received.text = "km"
    _, after = await any_tasks.log.append(task.task_id, answer, requeue=True)
    await any_tasks.requeue(after)
    again = await any_tasks.queue.claim("w2", 30)
    assert again is not None
    assert again.task_id == task.task_id


async def test_an_answer_before_the_askers_ack_still_queues_the_task(any_tasks: TaskSystem) -> None:
    """The client can answer as soon as it sees the question, before the worker that asked has
    acknowledged its delivery: the task must be queued again, and that late ack must not undo it."""
    task, _ = await any_tasks.submit(new_task(), trace={})
    assert await any_tasks.queue.claim("w1", 30) is not None
    asked = TaskEvent()
    asked.input_requested.question = "which unit?"
    await any_tasks.log.append(task.task_id, asked)
    answer = TaskEvent()
    answer.input_received.text = "km"
    _, after = await any_tasks.log.append(task.task_id, answer, requeue=True)
    await any_tasks.requeue(after)
    await any_tasks.queue.ack(task.task_id, "w1")  # the asker's ack arrives late
    assert not await any_tasks.queue.extend(task.task_id, "w1", 30)
    again = await any_tasks.queue.claim("w2", 30)
    assert again is not None
    assert (again.task_id, again.delivery_count) == (task.task_id, 1)
    await any_tasks.queue.ack(task.task_id, "w2")
    assert await any_tasks.queue.depth() == 0


async def test_schema_is_built_by_the_migrations(any_tasks: TaskSystem) -> None:
    def tables(connection: object) -> set[str]:
        return set(inspect(connection).get_table_names())

    async with any_tasks.engine.connect() as conn:
        names = await conn.run_sync(tables)
    assert {"task_tasks", "task_events", "task_queue", "task_alembic_version"} <= names
    await any_tasks.log.migrate()  # a second run is a no-op


async def test_tampering_with_a_stored_event_is_found(any_tasks: TaskSystem) -> None:
    task, _ = await any_tasks.submit(new_task(), trace={})
    for code in ("A", "B", "C"):
        event = TaskEvent()
        event.notice.code = code
        await any_tasks.log.append(task.task_id, event)
    assert (await any_tasks.log.verify(task.task_id)).ok
    forged = TaskEvent()
    forged.notice.code = "FORGED"
    forged.task_id = task.task_id
    forged.sequence = 3
    async with any_tasks.engine.begin() as conn:
        await conn.execute(
            update(schema.events)
            .where((schema.events.c.task_id == task.task_id) & (schema.events.c.sequence == 3))
            .values(event=forged.SerializeToString())
        )
    result = await any_tasks.log.verify(task.task_id)
    assert result.broken_at == 3
    assert "content" in result.problem


@pytest.mark.redis
@pytest.mark.postgres
async def test_the_sweep_queues_again_what_redis_lost(any_tasks: TaskSystem) -> None:
    queue = any_tasks.redis_queue
    if queue is None:
        pytest.skip("the sweep exists for the Redis queue only")
    lost, _ = await any_tasks.submit(new_task(), trace={})
    kept, _ = await any_tasks.submit(new_task(), trace={})
    done, _ = await any_tasks.submit(new_task(), trace={})
    finished = TaskEvent()
    finished.completed.answer = "4"
    await any_tasks.log.append(done.task_id, finished)
    assert any_tasks.redis is not None
    await any_tasks.redis.delete(queue.stream, queue.meta)  # Redis lost everything it held
    assert await any_tasks.queue.depth() == 0
    assert await any_tasks.sweep(grace_s=0) == 2
    claimed = set()
    while (claim := await any_tasks.queue.claim("w1", 30)) is not None:
        claimed.add(claim.task_id)
    assert claimed == {lost.task_id, kept.task_id}
    assert await any_tasks.sweep(grace_s=0) == 0  # held now: nothing to do


@pytest.mark.redis
@pytest.mark.postgres
async def test_the_sweep_finishes_a_half_done_replay(any_tasks: TaskSystem) -> None:
    if any_tasks.redis_queue is None:
        pytest.skip("the sweep exists for the Redis queue only")
    task, _ = await any_tasks.submit(new_task(), trace={})
    assert await any_tasks.queue.claim("w1", 30) is not None
    failed = TaskEvent()
    failed.failed.error.reason = "POISON"
    failed.failed.error.retryable = True
    await any_tasks.log.append(task.task_id, failed)
    await any_tasks.queue.dead_letter(task.task_id, "w1", "POISON")
    back = TaskEvent()
    back.state_changed.state = TaskState.TASK_STATE_SUBMITTED
    await any_tasks.log.append(task.task_id, back, allow_after_end=True)  # then the replay stopped
    assert await any_tasks.sweep(grace_s=0) == 1
    claim = await any_tasks.queue.claim("w2", 30)
    assert claim is not None
    assert claim.task_id == task.task_id


async def test_hundreds_of_concurrent_submits_are_all_accepted(any_tasks: TaskSystem) -> None:
    # More calls in flight than a client's pool has connections: callers wait for one, none fails.
    results = await asyncio.gather(*(any_tasks.submit(new_task(), trace={}) for _ in range(300)))
    assert len({task.task_id for task, _ in results}) == 300
    assert await any_tasks.queue.depth() == 300


async def test_the_release_a_session_is_on_is_its_newest_recorded_one(any_tasks: TaskSystem) -> None:
    async def run_on(session: str, revision: str | None) -> None:
        task = new_task()
        task.scope.session_id = session
        await any_tasks.submit(task, trace={})
        claim = await any_tasks.queue.claim("w1", 30)
        assert claim is not None
        working = TaskEvent()
        working.state_changed.state = TaskState.TASK_STATE_WORKING
        if revision is not None:
            working.state_changed.release.parts.add(service="language", revision=revision, label=revision)
        await any_tasks.begin_run(claim, "w1", working, runnable=True)
        await any_tasks.queue.ack(claim.task_id, "w1")

    scope = new_task().scope
    assert await any_tasks.session_release(scope) is None  # a new session
    await run_on("s1", "aaa")
    await run_on("s2", "bbb")  # another conversation of the same user
    await run_on("s1", None)  # a run that recorded no release
    found = await any_tasks.session_release(scope)
    assert found is not None
    assert [p.label for p in found.parts] == ["aaa"]
    await run_on("s1", "ccc")
    found = await any_tasks.session_release(scope)
    assert found is not None
    assert [p.label for p in found.parts] == ["ccc"]
    other = new_task(user="bo").scope  # the same session name of another user
    assert await any_tasks.session_release(other) is None
