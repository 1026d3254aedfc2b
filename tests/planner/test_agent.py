"""The planner with the other four services, all real, on port 0."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskOptions, TaskState
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.bulkhead import WaitingBulkhead
from hivemesh.mesh.config import Settings
from hivemesh.mesh.credentials import acting_as
from hivemesh.planner import strategy
from hivemesh.planner.clients import GrpcLanguage, GrpcMemory, GrpcTools
from hivemesh.planner.runner import BuiltinRunner
from hivemesh.planner.v1 import planner_service_pb2 as pb
from hivemesh.planner.v1.planner_service_pb2_grpc import PlannerServiceStub
from hivemesh.tool.v1.tool_service_pb2 import InvokeToolResponse, ToolSpec
from tests.support import RunningMesh, mesh_minter, rpc_error, start_mesh

pytestmark = pytest.mark.slow


@pytest.fixture
async def agent(settings: Settings) -> AsyncIterator[RunningMesh]:
    mesh = await start_mesh(settings)
    try:
        yield mesh
    finally:
        await mesh.stop()


def scope(user: str = "ana", session: str = "s1") -> Scope:
    return Scope(user_id=user, session_id=session)


async def execute(
    mesh: RunningMesh,
    text: str,
    *,
    user: str = "ana",
    session: str = "s1",
    options: TaskOptions | None = None,
) -> list[TaskEvent]:
    stub = GatewayServiceStub(mesh.client("gateway"))
    request = gw.ExecuteTaskRequest(
        request_id=f"{user}-{session}-{text}", text=text, scope=scope(user, session), options=options
    )
    return [response.event async for response in stub.ExecuteTask(request)]


def kinds(events: list[TaskEvent]) -> list[str]:
    return [str(e.WhichOneof("kind")) for e in events]


async def test_run_task_streams_the_answer(agent: RunningMesh) -> None:
    stub = PlannerServiceStub(agent.client("planner"))
    events = [
        r.event async for r in stub.RunTask(pb.RunTaskRequest(text="what is 12 * (3 + 4)?", scope=scope()))
    ]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].completed.answer == "84"
    assert "tool_result" in kinds(events)


async def test_plan_task_plans_compound_requests_without_running_them(agent: RunningMesh) -> None:
    stub = PlannerServiceStub(agent.client("planner"))
    response = await stub.PlanTask(
        pb.PlanTaskRequest(text="convert 5 miles to km and add eggs to my shopping list", scope=scope())
    )
    assert [s.tool_name for s in response.plan.steps] == ["convert_units", "list_add"]
    assert all(not s.depends_on for s in response.plan.steps)
    status = await rpc_error(stub.PlanTask(pb.PlanTaskRequest(text="", scope=scope())))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT


class BarrierTools:
    """The real tool service behind a barrier that opens only when two calls wait at it: if the
    planner ran the steps one after the other, the first call would never return."""

    def __init__(self, inner: GrpcTools) -> None:
        self._inner = inner
        self.barrier = asyncio.Barrier(2)

    async def list_tools(self) -> list[ToolSpec]:
        return await self._inner.list_tools()

    async def invoke(
        self, name: str, arguments: dict[str, Any], *, idempotency_key: str, scope: Scope, task_id: str
    ) -> InvokeToolResponse:
        await asyncio.wait_for(self.barrier.wait(), timeout=10)
        return await self._inner.invoke(
            name, arguments, idempotency_key=idempotency_key, scope=scope, task_id=task_id
        )


class ListSink:
    def __init__(self) -> None:
        self.events: list[TaskEvent] = []

    async def emit(self, event: TaskEvent) -> TaskEvent:
        self.events.append(event)
        return event


async def test_compound_steps_run_concurrently(agent: RunningMesh) -> None:
    bulkhead = WaitingBulkhead("test", 8)
    tools = BarrierTools(GrpcTools(agent.channels, bulkhead))
    runner = BuiltinRunner(
        GrpcLanguage(agent.channels, bulkhead), GrpcMemory(agent.channels, bulkhead), tools
    )
    task = Task(
        task_id="compound",
        scope=Scope(tenant_id="default", user_id="ana", session_id="s1"),
        input_text="convert 5 miles to km and add eggs to my shopping list",
        options=TaskOptions(max_steps=8),
    )
    sink = ListSink()
    with acting_as(mesh_minter(agent.settings).mint("default", "ana", "compound")):  # as its worker
        outcome = await runner.run(task, [], sink)
    assert "8.047 kilometers" in outcome.answer
    assert "eggs" in outcome.answer
    results = [e.tool_result.tool_name for e in sink.events if e.WhichOneof("kind") == "tool_result"]
    assert sorted(results) == ["convert_units", "list_add"]


async def test_missing_argument_asks_and_the_answer_continues_the_task(agent: RunningMesh) -> None:
    events = await execute(agent, "convert 10 miles")
    assert events[-1].WhichOneof("kind") == "input_requested"
    assert events[-1].input_requested.missing == "to_unit"
    task_id = events[-1].task_id
    stub = GatewayServiceStub(agent.client("gateway"))
    continued = await stub.ContinueTask(gw.ContinueTaskRequest(task_id=task_id, request_id="a1", text="km"))
    assert continued.task.state == TaskState.TASK_STATE_SUBMITTED
    rest = [
        r.event
        async for r in stub.WatchTask(
            gw.WatchTaskRequest(task_id=task_id, after_sequence=events[-1].sequence)
        )
    ]
    assert rest[-1].completed.answer.startswith("16.09")


async def test_a_memory_outage_degrades_instead_of_failing(agent: RunningMesh) -> None:
    await agent.servers["memory"].stop(2.0)
    events = await execute(agent, "what is 6 times 7")
    assert events[-1].completed.answer == "42"
    notices = [e.notice.code for e in events if e.WhichOneof("kind") == "notice"]
    assert "MEMORY_UNAVAILABLE" in notices


async def test_a_deadline_shorter_than_the_plan_fails_clearly(agent: RunningMesh) -> None:
    events = await execute(agent, "what is 2 + 2", options=TaskOptions(deadline=Duration(nanos=1_000_000)))
    assert events[-1].WhichOneof("kind") == "failed"
    error = events[-1].failed.error
    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert error.reason == "TASK_DEADLINE_EXCEEDED"


async def test_memory_is_recalled_in_a_new_session(agent: RunningMesh) -> None:
    told = await execute(agent, "remember that my sister's name is Ana", user="bo", session="one")
    assert told[-1].WhichOneof("kind") == "completed"
    asked = await execute(agent, "what's my sister's name?", user="bo", session="two")
    assert "Ana" in asked[-1].completed.answer
    stranger = await execute(agent, "what's my sister's name?", user="cy", session="one")
    assert "Ana" not in stranger[-1].completed.answer


async def test_out_of_scope_and_not_installed_are_different_replies(agent: RunningMesh) -> None:
    oos = await execute(agent, "who won the world cup in 2018")
    weather = await execute(agent, "what's the weather in Paris tomorrow")
    assert oos[-1].completed.answer.startswith("Sorry, that's outside")
    assert "no tool for weather forecasts is installed" in weather[-1].completed.answer
    assert "tool_called" not in kinds(oos) + kinds(weather)
    assert strategy.OUT_OF_SCOPE_REPLY.startswith("Sorry")


async def test_a_timer_goes_off_as_an_event_of_the_task_that_set_it(agent: RunningMesh) -> None:
    events = await execute(agent, "set a timer for 1 second")
    assert events[-1].completed.answer.startswith("Timer set for 1 second")
    task_id = events[-1].task_id
    stub = GatewayServiceStub(agent.client("gateway"))
    for _ in range(100):
        replay = [r.event async for r in stub.WatchTask(gw.WatchTaskRequest(task_id=task_id))]
        if replay[-1].WhichOneof("kind") == "notice":
            break
        await asyncio.sleep(0.1)
    assert replay[-1].notice.code == "TIMER_DONE"
