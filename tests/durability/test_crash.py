"""Workers killed with SIGKILL mid-run: nothing is lost, nothing is done twice."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskState
from hivemesh.mesh.config import Settings
from hivemesh.tasks.system import TaskSystem
from tests.durability.agent import Switch, effect_counts
from tests.durability.harness import WorkerProcess, stores, task_system, tool_service, until
from tests.support import mesh_minter

TASKS = 300


async def completed(tasks: TaskSystem) -> int:
    return (await tasks.log.count_by_state()).get(TaskState.TASK_STATE_COMPLETED, 0)


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.timeout(180)
# Redis + PostgreSQL, and the embedded SQLite store shared by the worker processes (its writes then
# contend across processes: the group-commit writer falls back to waiting on the database lock).
@pytest.mark.parametrize("distributed", [True, False], ids=["redis-postgres", "sqlite"])
async def test_killed_workers_lose_nothing_and_repeat_no_side_effect(
    settings: Settings, tmp_path: Path, distributed: bool
) -> None:
    async with (
        stores(settings, distributed=distributed) as base,
        tool_service(base, Switch()) as store,
        task_system(store) as tasks,
    ):
        # A task may be on both killed workers in turn: allow its deliveries some room.
        env = {**store.env, "HIVEMESH_PLANNER_WORKERS": "8", "HIVEMESH_MAX_ATTEMPTS": "5"}
        workers = [WorkerProcess(env, tmp_path / f"worker-{i}.log") for i in range(3)]
        try:
            submitted: list[Task] = []
            for number in range(TASKS):
                task, _ = await tasks.submit(
                    Task(
                        task_id=uuid.uuid4().hex,
                        scope=Scope(tenant_id="acme", user_id="ana", session_id="crash"),
                        request_id=f"crash-{number}",
                        input_text=f"job-{number}",
                    ),
                    trace={},
                    credential=mesh_minter(settings).mint("acme", "ana"),
                )
                submitted.append(task)
            # Kill a worker (SIGKILL: no clean-up, its claims stay pending) twice while tasks run,
            # each time starting a replacement, as a supervisor would.
            for victim, after in ((0, TASKS // 5), (1, TASKS // 2)):
                await until(_enough(tasks, after), timeout_s=90, what=f"{after} tasks done")
                workers[victim].kill()
                workers.append(WorkerProcess(env, tmp_path / f"worker-{len(workers)}.log"))
            await until(_enough(tasks, TASKS), timeout_s=120, what="every task to complete")
        finally:
            for worker in workers:
                worker.stop()

        states = await tasks.log.count_by_state()
        assert states == {TaskState.TASK_STATE_COMPLETED: TASKS}
        effects = await effect_counts(store.effects)
        assert effects == {f"job-{n}": 1 for n in range(TASKS)}  # every side effect exactly once
        retried = 0
        for task in submitted:
            events = await tasks.log.read(task.task_id, 0, limit=10_000)
            kinds = [e.WhichOneof("kind") for e in events]
            assert kinds.count("completed") == 1
            assert [e.sequence for e in events] == list(range(1, len(events) + 1))
            final = await tasks.log.get(task.task_id)
            assert final is not None
            retried += final.attempts > 1
        assert retried > 0, "no task was running on a killed worker: the kills proved nothing"
        assert await tasks.queue.depth() == 0
        assert await tasks.queue.dead_letters() == []
        print(f"\n{retried} of {TASKS} tasks were taken over from a killed worker and resumed")


def _enough(tasks: TaskSystem, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await completed(tasks) >= count

    return check
