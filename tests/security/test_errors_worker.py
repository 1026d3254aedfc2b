"""A user's input error is not the system's failure: a downstream INVALID_ARGUMENT about a huge value
ends the task after exactly one attempt with a short, clear error, never retried and never in the
dead-letter queue. The tool service is real and reached over gRPC (with a client's default metadata
limits) or in-process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import pytest

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskState
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.bulkhead import WaitingBulkhead
from hivemesh.mesh.config import Settings
from hivemesh.mesh.errors import MESSAGE_LIMIT, Code
from hivemesh.mesh.metrics import Metrics
from hivemesh.planner.clients import GrpcTools
from hivemesh.planner.ports import EventSink, Outcome
from hivemesh.planner.runner import BuiltinRunner
from hivemesh.planner.worker import WorkerPool
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.system import TaskSystem
from tests.durability.agent import NoMemory, ScriptedLanguage
from tests.security.errors_harness import PATHS, serve
from tests.support import mesh_minter

if TYPE_CHECKING:
    from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceAsyncStub

SCOPE = Scope(tenant_id="t1", user_id="ana", session_id="s1")
# Far longer than the calculator takes (256 characters); quoted whole, its error would not fit in
# the 16 KiB of trailers a gRPC client accepts at most.
EXPRESSION = "(" * 8000 + "1" + ")" * 8000


class CalculatorStep(BuiltinRunner):
    """A plan of one step, the calculator on the task's text, that must succeed: its failure ends the
    run with the downstream error, as the built-in planner's own failures (a request that needs too
    many steps, a language service refusing the text) do. What becomes of the task is then the
    worker's decision alone, which is what these tests look at."""

    def __init__(self, tools: GrpcTools) -> None:
        super().__init__(ScriptedLanguage(), NoMemory(), tools)
        self._calculator = tools

    async def run(self, task: Task, history: Sequence[TaskEvent], sink: EventSink) -> Outcome:
        response = await self._calculator.invoke(
            "calculator",
            {"expression": task.input_text},
            idempotency_key=f"{task.task_id}:1",
            scope=task.scope,
            task_id=task.task_id,
        )
        done = TaskEvent()
        done.completed.answer = response.display
        await sink.emit(done)
        return Outcome(answer=response.display)


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def events_until_the_end(tasks: TaskSystem, task_id: str) -> list[TaskEvent]:
    async with asyncio.timeout(60):
        return [event async for event in tasks.follow(task_id, 0)]


def attempts(events: Sequence[TaskEvent]) -> int:
    return sum(
        1
        for e in events
        if e.WhichOneof("kind") == "state_changed" and e.state_changed.state == TaskState.TASK_STATE_WORKING
    )


def retry_notices(events: Sequence[TaskEvent]) -> list[str]:
    return [
        e.notice.message for e in events if e.WhichOneof("kind") == "notice" and e.notice.code == "RETRYING"
    ]


async def test_a_tool_refusing_a_huge_value_fails_the_task_once_not_into_the_dead_letter_queue(
    settings: Settings, path: str
) -> None:
    queue = TaskConfig(sweep_interval_s=0, max_attempts=3, visibility_timeout_s=10.0)
    async with serve(settings, ["tool"], path) as served:
        tasks = TaskSystem(served.mesh.settings, queue)
        await tasks.start()
        tools = GrpcTools(served.mesh.channels, WaitingBulkhead("tool", 4))
        pool = WorkerPool(
            tasks, lambda: CalculatorStep(tools), served.mesh.settings, Metrics(), concurrency=1, queue=queue
        )
        await pool.start()
        try:
            task = Task(task_id=uuid.uuid4().hex, scope=SCOPE, request_id="huge", input_text=EXPRESSION)
            credential = mesh_minter(served.mesh.settings).mint(SCOPE.tenant_id, SCOPE.user_id)
            await tasks.submit(task, trace={}, credential=credential)
            events = await events_until_the_end(tasks, task.task_id)
        finally:
            await pool.stop(2.0)
        try:
            ended = await tasks.get(task.task_id)
            letter = await tasks.dead_letter_of(task.task_id)
        finally:
            await tasks.stop(0)
    assert retry_notices(events) == []
    assert attempts(events) == 1
    assert ended is not None
    assert ended.state == TaskState.TASK_STATE_FAILED
    assert (ended.error.code, ended.error.reason) == (Code.INVALID_ARGUMENT, "INVALID_TOOL_ARGUMENTS")
    assert not ended.error.retryable
    assert ended.error.message.startswith("invalid arguments for calculator: arguments.expression: '((((")
    assert ended.error.message.endswith("))))' is too long")
    assert len(ended.error.message.encode()) <= MESSAGE_LIMIT
    assert letter is None


@pytest.fixture
async def gateway(settings: Settings, path: str) -> AsyncIterator[GatewayServiceAsyncStub]:
    async with serve(settings, ["tool", "memory", "language", "planner", "gateway"], path) as served:
        yield GatewayServiceStub(served.mesh.client("gateway"))


@pytest.mark.slow
async def test_the_built_in_planner_answers_a_calculation_too_long_after_one_attempt(
    gateway: GatewayServiceAsyncStub,
) -> None:
    text = "what is " + "(" * 3000 + "1" + ")" * 3000
    request = gw.ExecuteTaskRequest(request_id="too-long", text=text, scope=SCOPE)
    async with asyncio.timeout(60):
        events = [response.event async for response in gateway.ExecuteTask(request)]
    assert retry_notices(events) == []
    assert attempts(events) == 1
    # The planner reports a failed step in its answer: the task completes with the reason.
    results = [e.tool_result for e in events if e.WhichOneof("kind") == "tool_result"]
    assert [r.error.code for r in results] == [Code.INVALID_ARGUMENT]
    answer = events[-1].completed.answer
    assert answer.startswith(
        "Sorry, I couldn't do that: invalid arguments for calculator: arguments.expression:"
    )
    assert answer.endswith("' is too long")
    assert len(answer.encode()) < 2 * MESSAGE_LIMIT
    dead = await gateway.ListDeadLetters(gw.ListDeadLettersRequest())
    assert list(dead.dead_letters) == []
