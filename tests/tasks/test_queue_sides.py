"""Claims by side of the planner's canary (sticky sessions), on every adapter: a task queued for one
side goes only to that side's workers or to a worker that claims for any side; a task for any side
goes to every worker; handing a task on to its side counts no delivery."""

from __future__ import annotations

import pytest

from hivemesh.common.v1.task_pb2 import TaskEvent
from hivemesh.mesh.sides import CANARY, STABLE
from hivemesh.tasks.system import TaskSystem
from tests.tasks.test_log import new_task


async def test_a_worker_claims_the_tasks_of_its_side_and_those_for_any(any_tasks: TaskSystem) -> None:
    on_canary, _ = await any_tasks.submit(new_task(), trace={}, side=CANARY)
    on_stable, _ = await any_tasks.submit(new_task(), trace={}, side=STABLE)
    anywhere, _ = await any_tasks.submit(new_task(), trace={})

    stable_claims = [await any_tasks.claim("stable-1", 30, side=STABLE) for _ in range(3)]
    assert {c.task_id for c in stable_claims if c is not None} == {on_stable.task_id, anywhere.task_id}
    assert stable_claims[-1] is None  # the canary's task waits for the canary

    canary = await any_tasks.claim("canary-1", 30, side=CANARY)
    assert canary is not None
    assert (canary.task_id, canary.delivery_count) == (on_canary.task_id, 1)
    assert await any_tasks.claim("canary-1", 30, side=CANARY) is None


async def test_a_worker_for_any_side_claims_every_task(any_tasks: TaskSystem) -> None:
    submitted = {
        (await any_tasks.submit(new_task(), trace={}, side=side))[0].task_id for side in (CANARY, STABLE, "")
    }
    claimed = {c.task_id for c in [await any_tasks.claim("any", 30) for _ in range(3)] if c is not None}
    assert claimed == submitted


@pytest.mark.parametrize("side", [STABLE, CANARY])
async def test_an_answered_task_goes_back_to_the_side_it_is_given(any_tasks: TaskSystem, side: str) -> None:
    task, _ = await any_tasks.submit(new_task(), trace={}, side=side)
    assert await any_tasks.claim("w1", 30, side=side) is not None
    asked = TaskEvent()
    asked.input_requested.question = "which unit?"
    await any_tasks.log.append(task.task_id, asked)
    await any_tasks.queue.ack(task.task_id, "w1")
    await any_tasks.answer(task.task_id, "km", side=side)

    other = CANARY if side == STABLE else STABLE
    assert await any_tasks.claim("other", 30, side=other) is None
    again = await any_tasks.claim("w2", 30, side=side)
    assert again is not None
    assert (again.task_id, again.delivery_count) == (task.task_id, 1)
