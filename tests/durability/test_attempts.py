"""A task taken over mid-answer: every event says which attempt it belongs to, and a watcher
(``AnswerJoiner``, ``hivemesh task watch``) shows the current attempt's answer only."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from hivemesh.client import AnswerJoiner, HivemeshClient
from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskState
from hivemesh.gateway.config import AuthMode, GatewayConfig
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.mesh.config import Settings
from hivemesh.tasks.system import TaskSystem
from tests.durability.agent import StallingLanguage, Switch
from tests.durability.harness import (
    Stores,
    WorkerProcess,
    ended,
    stores,
    task_system,
    tool_service,
    until,
    worker_pool,
)
from tests.gateway.harness import request_id, serve_gateway
from tests.support import mesh_minter

OPEN = GatewayConfig(auth=AuthMode.NONE, rate_limit_per_s=0)
BACKENDS = [
    pytest.param(False, id="embedded"),
    pytest.param(True, id="distributed", marks=[pytest.mark.redis, pytest.mark.postgres]),
]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Stores]:
    async with stores(settings, distributed=request.param) as found:
        yield found


def _partial_answer(tasks: TaskSystem, task_id: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        events = await tasks.log.read(task_id, 0)
        return sum(e.WhichOneof("kind") == "answer_delta" for e in events) >= 2

    return check


def _is_working(event: TaskEvent) -> bool:
    return (
        event.WhichOneof("kind") == "state_changed"
        and event.state_changed.state == TaskState.TASK_STATE_WORKING
    )


async def watch(address: str, task_id: str) -> str:
    """``hivemesh task watch`` in its own process; its standard output."""
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hivemesh.cli", "task", "watch", task_id, "--address", address],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HIVEMESH_METRICS_PORT": "off"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_task_taken_over_mid_answer_is_watched_as_one_answer(
    store: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEMESH_REDIS_PREFIX", store.config.redis_prefix)
    async with (
        tool_service(store, Switch()) as running,
        task_system(running) as tasks,
        serve_gateway(running.settings, OPEN) as gw,
    ):
        # The first worker starts the answer and is killed (SIGKILL) in the middle of it.
        stalling = WorkerProcess({**running.env, "DURABILITY_LANGUAGE": "stalling"}, tmp_path / "w1.log")
        try:
            submitted: pb.SubmitTaskResponse = await gw.stub.SubmitTask(
                pb.SubmitTaskRequest(
                    request_id=request_id(),
                    text="job-7",
                    scope=Scope(tenant_id="acme", user_id="ana", session_id="takeover"),
                )
            )
            task_id = submitted.task.task_id
            await until(_partial_answer(tasks, task_id), timeout_s=30, what="the first attempt's deltas")
            stalling.kill()
        finally:
            stalling.stop()
        # Another worker takes the task over once the dead one's lease runs out.
        async with worker_pool(running, tasks):
            await until(lambda: ended(tasks, task_id), timeout_s=30, what="the task to be taken over")

        final = await tasks.log.get(task_id)
        assert final is not None
        assert final.state == TaskState.TASK_STATE_COMPLETED
        assert final.attempts == 2
        events = await tasks.log.read(task_id, 0)
        deltas = [e for e in events if e.WhichOneof("kind") == "answer_delta"]
        assert [e.attempt for e in deltas] == [1, 1, 2]
        # Joined without regard to attempts, the deltas repeat the start of the answer.
        assert "".join(e.answer_delta.text for e in deltas) == final.answer[:6] + final.answer
        # Every event of a run carries the number of that run; the submission is of none.
        runs = 0
        for event in events:
            runs += _is_working(event)
            assert event.attempt == (0 if event.WhichOneof("kind") == "submitted" else runs), event

        address = f"127.0.0.1:{gw.server.port}"
        async with HivemeshClient(address) as client:
            answer = AnswerJoiner()
            discarded = [text async for text in _fed(answer, client.follow(task_id))]
        assert answer.text == final.answer
        assert answer.attempt == 2
        assert discarded == [final.answer[:6]]

        printed = (await watch(address, task_id)).splitlines()
        assert "      attempt 2 started; earlier partial answer discarded" in printed
        assert printed[-1] == f"answer: {final.answer}"
        assert not any("answer_delta" in line for line in printed)


async def _fed(answer: AnswerJoiner, events: AsyncIterator[TaskEvent]) -> AsyncIterator[str]:
    """Feed ``events`` to ``answer``; yield what each discarded, when it discarded anything."""
    async for event in events:
        discarded = answer.add(event)
        if discarded:
            yield discarded


@pytest.mark.timeout(60)
async def test_a_run_stopped_mid_answer_gives_way_to_the_next_attempt(settings: Settings) -> None:
    """The worker pool shuts down mid-answer and gives its claim back: the next attempt's events
    are numbered 2 and the joined answer is that attempt's alone."""
    async with (
        stores(settings, distributed=False, max_attempts=3) as base,
        tool_service(base, Switch()) as running,
        task_system(running) as tasks,
    ):
        task, _ = await tasks.submit(
            Task(
                task_id="stopped-1",
                scope=Scope(tenant_id="acme", user_id="ana", session_id="stop"),
                request_id="stopped-1",
                input_text="job-9",
            ),
            trace={},
            credential=mesh_minter(settings).mint("acme", "ana"),
        )
        async with worker_pool(running, tasks, language=StallingLanguage):
            await until(_partial_answer(tasks, task.task_id), timeout_s=20, what="the first deltas")
        async with worker_pool(running, tasks):
            await until(lambda: ended(tasks, task.task_id), timeout_s=20, what="the second attempt")
        final = await tasks.log.get(task.task_id)
        assert final is not None
        assert final.state == TaskState.TASK_STATE_COMPLETED
        answer = AnswerJoiner()
        events = await tasks.log.read(task.task_id, 0)
        for event in events:
            answer.add(event)
        assert answer.text == final.answer
        assert [e.attempt for e in events if e.WhichOneof("kind") == "answer_delta"] == [1, 1, 2]
