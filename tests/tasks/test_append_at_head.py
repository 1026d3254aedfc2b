"""On PostgreSQL an append chains onto the head its process last wrote, in one statement, and falls
back to the locking path whenever the log has moved on: two processes (two task systems on one
database) appending to one task in turn keep one gap-free, verifiable chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection

from hivemesh.mesh.config import Settings
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.log import TaskTerminal
from hivemesh.tasks.system import TaskSystem
from tests.tasks.stores import postgres_database
from tests.tasks.test_log import new_task, notice

pytestmark = pytest.mark.postgres


@pytest.fixture
async def two() -> AsyncIterator[tuple[TaskSystem, TaskSystem]]:
    async with postgres_database() as url:
        settings = Settings.from_env({"HIVEMESH_DATABASE_URL": url})
        systems = []
        for _ in range(2):
            system = TaskSystem(replace(settings, database_url=url), TaskConfig(sweep_interval_s=0))
            await system.start()
            systems.append(system)
        try:
            yield systems[0], systems[1]
        finally:
            for system in systems:
                await system.stop(0)


def statements(system: TaskSystem) -> list[str]:
    """Every statement ``system``'s log sends from now on, as text."""
    sent: list[str] = []

    def record(conn: Connection, cursor: object, text: str, *args: object) -> None:
        sent.append(text)

    event.listen(system.log.engine.sync_engine, "before_cursor_execute", record)
    return sent


async def test_appends_from_two_processes_in_turn_keep_one_chain(two: tuple[TaskSystem, TaskSystem]) -> None:
    a, b = two
    task, _ = await a.log.submit(new_task(), trace={})
    sent_by_a = statements(a)
    for i in range(3):
        await a.log.append(task.task_id, notice(f"A{i}"))
    # The first append locks and reads the row; the next two are one statement each.
    assert sum("FOR UPDATE" in s for s in sent_by_a) == 1
    assert sum(s.startswith("WITH moved AS") for s in sent_by_a) == 2

    await b.log.append(task.task_id, notice("B0"))  # a's head is now stale
    sent_by_a.clear()
    stored, after = await a.log.append(task.task_id, notice("A3"))
    assert stored.sequence == 6
    assert after.last_sequence == 6
    # a tried its stale head, wrote nothing, and took the locking path.
    assert sum(s.startswith("WITH moved AS") for s in sent_by_a) == 1
    assert sum("FOR UPDATE" in s for s in sent_by_a) == 1

    events = await b.log.read(task.task_id, 0)
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.notice.code for e in events[1:]] == ["A0", "A1", "A2", "B0", "A3"]
    assert (await b.log.verify(task.task_id)).ok
    assert (await a.log.get(task.task_id)).last_sequence == 6  # type: ignore[union-attr]


async def test_concurrent_appends_from_two_processes_lose_nothing(two: tuple[TaskSystem, TaskSystem]) -> None:
    a, b = two
    task, _ = await a.log.submit(new_task(), trace={})
    await asyncio.gather(
        *(a.log.append(task.task_id, notice(f"A{i}")) for i in range(15)),
        *(b.log.append(task.task_id, notice(f"B{i}")) for i in range(15)),
    )
    events = await a.log.read(task.task_id, 0)
    assert [e.sequence for e in events] == list(range(1, 32))
    codes = sorted(e.notice.code for e in events[1:])
    assert codes == sorted([f"A{i}" for i in range(15)] + [f"B{i}" for i in range(15)])
    assert (await a.log.verify(task.task_id)).ok


async def test_an_end_written_elsewhere_stops_a_process_that_holds_the_head(
    two: tuple[TaskSystem, TaskSystem],
) -> None:
    from hivemesh.common.v1.task_pb2 import TaskEvent, TaskState  # noqa: PLC0415

    a, b = two
    task, _ = await a.log.submit(new_task(), trace={})
    await a.log.append(task.task_id, notice("A0"))
    await a.log.append(task.task_id, notice("A1"))  # a holds the head
    canceled = TaskEvent()
    canceled.state_changed.state = TaskState.TASK_STATE_CANCELED
    await b.log.append(task.task_id, canceled)
    with pytest.raises(TaskTerminal):
        await a.log.append(task.task_id, notice("LATE"))
    events = await a.log.read(task.task_id, 0)
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert (await a.log.verify(task.task_id)).ok
