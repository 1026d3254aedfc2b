from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import update

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskState
from hivemesh.mesh.errors import InvalidArgument, NotFound
from hivemesh.tasks import schema
from hivemesh.tasks.log import TaskTerminal
from hivemesh.tasks.system import TaskSystem


def new_task(request_id: str = "", tenant: str = "acme", user: str = "ana") -> Task:
    return Task(
        task_id=uuid.uuid4().hex,
        scope=Scope(tenant_id=tenant, user_id=user, session_id="s1"),
        request_id=request_id or uuid.uuid4().hex,
        input_text="what is 2 + 2?",
    )


def notice(code: str) -> TaskEvent:
    event = TaskEvent()
    event.notice.code = code
    return event


async def test_submit_records_sequence_one_and_queues(tasks: TaskSystem) -> None:
    task, existing = await tasks.log.submit(new_task(), trace={})
    assert not existing
    assert task.state == TaskState.TASK_STATE_SUBMITTED
    assert task.last_sequence == 1
    events = await tasks.log.read(task.task_id, 0)
    assert [e.WhichOneof("kind") for e in events] == ["submitted"]
    assert await tasks.queue.depth() == 1


async def test_same_request_id_returns_the_existing_task(tasks: TaskSystem) -> None:
    first, _ = await tasks.log.submit(new_task("req-1"), trace={})
    again, existing = await tasks.log.submit(new_task("req-1"), trace={})
    assert existing
    assert again.task_id == first.task_id
    # Another tenant may use the same request id for its own task.
    other, other_existing = await tasks.log.submit(new_task("req-1", tenant="globex"), trace={})
    assert not other_existing
    assert other.task_id != first.task_id
    assert await tasks.queue.depth() == 2


async def test_concurrent_submits_with_one_request_id_make_one_task(tasks: TaskSystem) -> None:
    results = await asyncio.gather(*(tasks.log.submit(new_task("same"), trace={}) for _ in range(8)))
    assert len({task.task_id for task, _ in results}) == 1
    assert sum(1 for _, existing in results if not existing) == 1


async def test_sequences_are_strictly_increasing_under_concurrent_appends(tasks: TaskSystem) -> None:
    task, _ = await tasks.log.submit(new_task(), trace={})
    await asyncio.gather(*(tasks.log.append(task.task_id, notice(f"N{i}")) for i in range(20)))
    events = await tasks.log.read(task.task_id, 0)
    assert [e.sequence for e in events] == list(range(1, 22))
    assert (await tasks.log.get(task.task_id)).last_sequence == 21  # type: ignore[union-attr]


async def test_nothing_is_appended_after_the_end(tasks: TaskSystem) -> None:
    task, _ = await tasks.log.submit(new_task(), trace={})
    done = TaskEvent()
    done.completed.answer = "4"
    _, after = await tasks.log.append(task.task_id, done)
    assert after.state == TaskState.TASK_STATE_COMPLETED
    assert after.answer == "4"
    with pytest.raises(TaskTerminal):
        await tasks.log.append(task.task_id, notice("LATE"))


async def test_append_to_unknown_task_is_not_found(tasks: TaskSystem) -> None:
    with pytest.raises(NotFound):
        await tasks.log.append("nope", notice("X"))


async def test_verify_names_the_first_tampered_event(tasks: TaskSystem) -> None:
    task, _ = await tasks.log.submit(new_task(), trace={})
    for i in range(4):
        await tasks.log.append(task.task_id, notice(f"N{i}"))
    assert (await tasks.log.verify(task.task_id)).ok
    forged = notice("FORGED")
    forged.task_id = task.task_id
    forged.sequence = 3
    async with tasks.engine.begin() as conn:
        await conn.execute(
            update(schema.events)
            .where((schema.events.c.task_id == task.task_id) & (schema.events.c.sequence == 3))
            .values(event=forged.SerializeToString())
        )
    result = await tasks.log.verify(task.task_id)
    assert not result.ok
    assert result.broken_at == 3


async def test_list_pages_newest_first_and_filters_by_tenant_and_state(tasks: TaskSystem) -> None:
    ids = []
    for i in range(5):
        task, _ = await tasks.log.submit(new_task(), trace={}, now=1_000.0 + i)
        ids.append(task.task_id)
    await tasks.log.submit(new_task(tenant="globex"), trace={})
    first, token = await tasks.log.list_tasks("acme", page_size=2)
    second, token2 = await tasks.log.list_tasks("acme", page_size=2, page_token=token)
    third, token3 = await tasks.log.list_tasks("acme", page_size=2, page_token=token2)
    assert [t.task_id for t in first + second + third] == list(reversed(ids))
    assert token3 == ""
    completed, _ = await tasks.log.list_tasks("acme", states=[TaskState.TASK_STATE_COMPLETED])
    assert completed == []
    recent, _ = await tasks.log.list_tasks("acme", created_after=1_003.0)
    assert {t.task_id for t in recent} == set(ids[3:])


async def test_a_garbled_page_token_is_invalid_argument(tasks: TaskSystem) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await tasks.log.list_tasks("acme", page_token="not-a-token")
    assert caught.value.violations[0].field == "page_token"
