from __future__ import annotations

import time

from hivemesh.common.v1.task_pb2 import TaskEvent, TaskState
from hivemesh.tasks.reminders import ReminderDispatcher
from hivemesh.tasks.system import TaskSystem
from tests.tasks.test_log import new_task


async def test_a_due_reminder_is_appended_to_its_task_once(any_tasks: TaskSystem) -> None:
    task, _ = await any_tasks.submit(new_task(), trace={})
    done = TaskEvent()
    done.completed.answer = "Timer set for 1 second"
    await any_tasks.log.append(task.task_id, done)
    book = any_tasks.reminders
    now = time.time()
    await book.schedule(
        "r-due", task_id=task.task_id, tenant_id="acme", kind="timer", text="tea", due=now - 1
    )
    await book.schedule(
        "r-due", task_id=task.task_id, tenant_id="acme", kind="timer", text="tea", due=now - 1
    )
    await book.schedule(
        "r-later", task_id=task.task_id, tenant_id="acme", kind="reminder", text="call", due=now + 3600
    )
    dispatcher = ReminderDispatcher(book, any_tasks.log)
    assert await dispatcher.deliver_due() == 1
    assert await dispatcher.deliver_due() == 0
    events = await any_tasks.log.read(task.task_id, 0)
    notices = [(e.notice.code, e.notice.message) for e in events if e.WhichOneof("kind") == "notice"]
    assert notices == [("TIMER_DONE", "Timer done: tea")]
    after = await any_tasks.log.get(task.task_id)
    assert after is not None
    assert after.state == TaskState.TASK_STATE_COMPLETED  # the notice does not reopen the task
    assert await book.pending(task.task_id) == 1
    # A watcher replaying the task now hears the notice recorded after its end.
    followed = [e async for e in any_tasks.follow(task.task_id, 0)]
    assert followed[-1].WhichOneof("kind") == "notice"


async def test_a_leased_reminder_is_not_handed_out_twice(any_tasks: TaskSystem) -> None:
    book = any_tasks.reminders
    await book.schedule("r1", task_id="t", tenant_id="acme", kind="reminder", text="x", due=time.time() - 1)
    first = await book.claim_due(lease_s=30)
    second = await book.claim_due(lease_s=30)
    assert [r.reminder_id for r in first] == ["r1"]
    assert second == []
