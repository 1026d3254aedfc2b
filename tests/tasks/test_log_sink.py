"""A run's events wait briefly to be recorded together: fewer transactions, the same log, nobody
told of an event before it is recorded, nothing lost when the run ends or fails."""

from __future__ import annotations

import asyncio

import pytest

from hivemesh.common.v1.task_pb2 import TaskEvent
from hivemesh.mesh.sql import transactions_committed
from hivemesh.planner.worker import EVENT_HOLD_S, LogSink
from hivemesh.tasks.log import TaskTerminal
from hivemesh.tasks.system import TaskSystem
from tests.tasks.test_log import new_task, notice


def _kinds(events: list[TaskEvent]) -> list[str]:
    return [e.notice.code if e.WhichOneof("kind") == "notice" else str(e.WhichOneof("kind")) for e in events]


def _completed(answer: str) -> TaskEvent:
    event = TaskEvent()
    event.completed.answer = answer
    return event


async def test_a_run_that_ends_quickly_records_its_events_with_the_end_in_one_transaction(
    tasks: TaskSystem,
) -> None:
    task, _ = await tasks.log.submit(new_task(), trace={}, now=0)
    sink = LogSink(tasks, task.task_id, attempt=1)
    before = transactions_committed()
    for code in ("A", "B", "C"):
        await sink.emit(notice(code))
    await sink.emit(_completed("4"))
    # Nothing is recorded, so nothing is heard of, before the run ends.
    assert _kinds(await tasks.log.read(task.task_id, 1)) == []
    await sink.settled()
    await tasks.finish_run(task.task_id, "w1", sink.closing, earlier=sink.waiting())
    assert transactions_committed() == before + 1
    events = await tasks.log.read(task.task_id, 1)
    assert _kinds(events) == ["A", "B", "C", "completed"]
    assert [e.sequence for e in events] == [2, 3, 4, 5]
    assert {e.attempt for e in events} == {1}
    assert (await tasks.log.verify(task.task_id)).ok


async def test_an_event_is_recorded_within_the_hold_while_the_run_goes_on(tasks: TaskSystem) -> None:
    task, _ = await tasks.log.submit(new_task(), trace={}, now=0)
    sink = LogSink(tasks, task.task_id, attempt=1)
    await sink.emit(notice("CALLING"))
    await sink.emit(notice("STILL_CALLING"))
    # A long step (a slow tool): its events reach the log, together, without waiting for its end.
    before = transactions_committed()
    for _ in range(100):
        await asyncio.sleep(EVENT_HOLD_S / 2)
        if len(await tasks.log.read(task.task_id, 1)) == 2:
            break
    assert _kinds(await tasks.log.read(task.task_id, 1)) == ["CALLING", "STILL_CALLING"]
    assert transactions_committed() == before + 1
    await sink.emit(notice("RESULT"))
    await sink.flush()
    assert _kinds(await tasks.log.read(task.task_id, 1)) == ["CALLING", "STILL_CALLING", "RESULT"]


async def test_a_write_refused_because_the_task_ended_reaches_the_run(tasks: TaskSystem) -> None:
    task, _ = await tasks.log.submit(new_task(), trace={}, now=0)
    sink = LogSink(tasks, task.task_id, attempt=1)
    await sink.emit(notice("WORKING"))
    await tasks.cancel(task.task_id, "changed my mind")
    await asyncio.sleep(EVENT_HOLD_S)
    with pytest.raises(TaskTerminal):
        await sink.settled()
    with pytest.raises(TaskTerminal):
        await sink.emit(notice("MORE"))
    # The cancellation is the task's last word; none of the refused events was appended.
    assert _kinds(await tasks.log.read(task.task_id, 1)) == ["canceled"]
