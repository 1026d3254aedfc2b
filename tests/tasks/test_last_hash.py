"""The hash of a task's last event rides on its projection row; rows written before it did (their
``last_hash`` is NULL) still chain correctly: the next append reads the hash from the events."""

from __future__ import annotations

from sqlalchemy import select, update

from hivemesh.common.v1.task_pb2 import TaskEvent
from hivemesh.tasks import schema
from hivemesh.tasks.system import TaskSystem
from tests.tasks.test_log import new_task


def _notice(code: str) -> TaskEvent:
    event = TaskEvent()
    event.notice.code = code
    return event


async def test_appends_chain_with_and_without_the_hash_on_the_row(any_tasks: TaskSystem) -> None:
    task, _ = await any_tasks.submit(new_task(), trace={})
    await any_tasks.log.append(task.task_id, _notice("ONE"))
    async with any_tasks.engine.begin() as conn:
        stored = (
            await conn.execute(select(schema.tasks.c.last_hash).where(schema.tasks.c.task_id == task.task_id))
        ).scalar_one()
        newest = (
            await conn.execute(
                select(schema.events.c.hash).where(
                    schema.events.c.task_id == task.task_id, schema.events.c.sequence == 2
                )
            )
        ).scalar_one()
        assert stored == newest
        # As a row from before the column existed.
        await conn.execute(
            update(schema.tasks).where(schema.tasks.c.task_id == task.task_id).values(last_hash=None)
        )
    await any_tasks.log.append(task.task_id, _notice("TWO"))
    await any_tasks.log.append(task.task_id, _notice("THREE"))
    verdict = await any_tasks.log.verify(task.task_id)
    assert verdict.ok, verdict.problem
    assert verdict.events == 4
