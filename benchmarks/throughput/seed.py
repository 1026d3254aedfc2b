"""Fill a task log with finished tasks, fast, before a topology starts on it (the growth check).

The schema comes from the task system's own start (its migrations); the rows are those the log writes for a
calculation that went the usual way (submitted, working, understood, one tool step, the answer):
eight hash-chained events and the projection row, inserted in large batches instead of one
transaction per event. ``hivemesh task verify`` accepts every seeded task.
"""

from __future__ import annotations

import time
import uuid

from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskState
from hivemesh.mesh.config import Settings
from hivemesh.tasks import schema
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.log import GENESIS, chain_hash
from hivemesh.tasks.projection import apply
from hivemesh.tasks.system import TaskSystem

BATCH = 2000


def _events(task_id: str, number: int, tenant_id: str, created: float) -> list[TaskEvent]:
    """The events of one finished calculation, ``sequence`` and ``time`` filled in."""
    kinds: list[TaskEvent] = []

    submitted = TaskEvent()
    submitted.submitted.input_text = f"what is {number} * 2?"
    submitted.submitted.scope.CopyFrom(
        Scope(tenant_id=tenant_id, user_id=f"seed-{number % 1000}", session_id=f"seed-{number}")
    )
    submitted.submitted.request_id = f"seed-{number}-{task_id[:8]}"
    kinds.append(submitted)

    working = TaskEvent()
    working.state_changed.state = TaskState.TASK_STATE_WORKING
    working.state_changed.reason = "claimed by seed"
    kinds.append(working)

    understood = TaskEvent()
    understood.intent_recognized.intent = "calculate"
    understood.intent_recognized.confidence = 0.97
    kinds.append(understood)

    step = TaskEvent()
    step.step_started.step = 1
    step.step_started.name = "calculator"
    kinds.append(step)

    called = TaskEvent()
    called.tool_called.step = 1
    called.tool_called.tool_name = "calculator"
    called.tool_called.arguments.CopyFrom(_struct({"expression": f"{number} * 2"}))
    called.tool_called.idempotency_key = f"{task_id}:1"
    kinds.append(called)

    answer = str(number * 2)
    result = TaskEvent()
    result.tool_result.step = 1
    result.tool_result.tool_name = "calculator"
    result.tool_result.result.CopyFrom(_struct({"value": number * 2}))
    result.tool_result.display = answer
    kinds.append(result)

    delta = TaskEvent()
    delta.answer_delta.text = answer
    kinds.append(delta)

    completed = TaskEvent()
    completed.completed.answer = answer
    kinds.append(completed)

    for sequence, event in enumerate(kinds, start=1):
        event.task_id = task_id
        event.sequence = sequence
        stamp = Timestamp()
        stamp.FromNanoseconds(int((created + sequence * 0.005) * 1e9))
        event.time.CopyFrom(stamp)
    return kinds


def _struct(values: dict[str, str | float]) -> Struct:
    message = Struct()
    message.update(values)
    return message


def _rows(number: int, tenant_id: str, created: float) -> tuple[dict[str, object], list[dict[str, object]]]:
    task_id = uuid.uuid4().hex
    task = Task()
    event_rows: list[dict[str, object]] = []
    prev = GENESIS
    for event in _events(task_id, number, tenant_id, created):
        task = apply(task, event)
        payload = event.SerializeToString(deterministic=True)
        digest = chain_hash(prev, payload)
        event_rows.append(
            {
                "task_id": task_id,
                "sequence": event.sequence,
                "event": payload,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    task_row: dict[str, object] = {
        "task_id": task_id,
        "tenant_id": tenant_id,
        "user_id": task.scope.user_id,
        "request_id": task.request_id,
        "state": int(task.state),
        "create_time": created,
        "update_time": task.update_time.ToNanoseconds() / 1e9,
        "last_sequence": task.last_sequence,
        "last_hash": prev,
        "task": task.SerializeToString(deterministic=True),
    }
    return task_row, event_rows


async def seed_log(settings: Settings, count: int, *, tenant_id: str) -> float:
    """Open the task log ``settings`` name (which creates its schema), and add ``count`` finished
    tasks of ``tenant_id``, created over the hour before now. Returns the seconds taken."""
    began = time.perf_counter()
    tasks = TaskSystem(settings, TaskConfig(sweep_interval_s=0))
    await tasks.start()
    try:
        start = time.time() - 3600
        for first in range(0, count, BATCH):
            task_rows: list[dict[str, object]] = []
            event_rows: list[dict[str, object]] = []
            for number in range(first, min(count, first + BATCH)):
                task_row, events = _rows(number, tenant_id, start + 3600 * number / max(1, count))
                task_rows.append(task_row)
                event_rows += events
            async with tasks.engine.begin() as conn:
                await conn.execute(schema.tasks.insert(), task_rows)
                await conn.execute(schema.events.insert(), event_rows)
    finally:
        await tasks.stop(0)
    return time.perf_counter() - began
