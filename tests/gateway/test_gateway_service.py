"""GatewayService against a real server on port 0 (no planner: tasks stay queued)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypeAlias, cast

import grpc
import pytest

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import CanarySide, TaskOptions, TaskState
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.config import Settings
from tests.support import RunningMesh, rpc_error, start_mesh

if TYPE_CHECKING:
    from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceAsyncStub

Fixture: TypeAlias = "tuple[RunningMesh, GatewayServiceAsyncStub]"
SCOPE = Scope(user_id="ana", session_id="s1")


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Fixture]:
    mesh = await start_mesh(settings, services=["gateway"])
    try:
        yield mesh, GatewayServiceStub(mesh.client("gateway"))
    finally:
        await mesh.stop()


# A side no client may name: only the enum's values are.
UNDEFINED_SIDE = cast("CanarySide.ValueType", 7)


def submit(
    text: str = "what is 2 + 2?", request_id: str = "r1", scope: Scope = SCOPE
) -> pb.SubmitTaskRequest:
    return pb.SubmitTaskRequest(request_id=request_id, text=text, scope=scope)


async def test_submit_get_list_and_watch(gateway: Fixture) -> None:
    _, stub = gateway
    submitted: pb.SubmitTaskResponse = await stub.SubmitTask(submit())
    task = submitted.task
    assert task.state == TaskState.TASK_STATE_SUBMITTED
    assert task.scope.tenant_id == "default"
    assert task.options.max_steps > 0
    assert task.options.deadline.seconds > 0
    got: pb.GetTaskResponse = await stub.GetTask(pb.GetTaskRequest(task_id=task.task_id))
    assert got.task.input_text == "what is 2 + 2?"
    listed: pb.ListTasksResponse = await stub.ListTasks(pb.ListTasksRequest())
    assert [t.task_id for t in listed.tasks] == [task.task_id]
    canceled: pb.CancelTaskResponse = await stub.CancelTask(pb.CancelTaskRequest(task_id=task.task_id))
    assert canceled.task.state == TaskState.TASK_STATE_CANCELED
    events = [r.event async for r in stub.WatchTask(pb.WatchTaskRequest(task_id=task.task_id))]
    assert [e.sequence for e in events] == [1, 2]
    assert [e.WhichOneof("kind") for e in events] == ["submitted", "canceled"]
    resumed = [
        r.event async for r in stub.WatchTask(pb.WatchTaskRequest(task_id=task.task_id, after_sequence=1))
    ]
    assert [e.sequence for e in resumed] == [2]


async def test_submit_is_idempotent_per_request_id(
    gateway: Fixture,
) -> None:
    _, stub = gateway
    first: pb.SubmitTaskResponse = await stub.SubmitTask(submit(request_id="same"))
    second: pb.SubmitTaskResponse = await stub.SubmitTask(submit(request_id="same"))
    assert not first.existing
    assert second.existing
    assert second.task.task_id == first.task.task_id


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (submit(text=""), "text"),
        (submit(request_id=""), "request_id"),
        (pb.SubmitTaskRequest(request_id="r", text="hi"), "scope"),
        (submit(scope=Scope(user_id="ana")), "scope.session_id"),
        (submit(scope=Scope(user_id="bad user!", session_id="s")), "scope.user_id"),
        (
            pb.SubmitTaskRequest(
                request_id="r", text="hi", scope=SCOPE, options=TaskOptions(side=UNDEFINED_SIDE)
            ),
            "options.side",
        ),
    ],
)
async def test_invalid_submit_names_the_field(
    gateway: Fixture, request_: pb.SubmitTaskRequest, field: str
) -> None:
    _, stub = gateway
    status = await rpc_error(stub.SubmitTask(request_))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in status.field_violations]
    assert status.domain == "hivemesh.gateway"


@pytest.mark.parametrize("method", ["GetTask", "CancelTask", "WatchTask"])
async def test_unknown_task_is_not_found_with_error_info(gateway: Fixture, method: str) -> None:
    _, stub = gateway
    requests = {
        "GetTask": pb.GetTaskRequest(task_id="0" * 32),
        "CancelTask": pb.CancelTaskRequest(task_id="0" * 32),
        "WatchTask": pb.WatchTaskRequest(task_id="0" * 32),
    }
    call = getattr(stub, method)(requests[method])
    if method == "WatchTask":

        async def drain() -> None:
            async for _ in call:
                pass

        status = await rpc_error(drain())
    else:
        status = await rpc_error(call)
    assert status.code == grpc.StatusCode.NOT_FOUND
    assert status.reason == "TASK_NOT_FOUND"
    assert status.metadata["task_id"] == "0" * 32


async def test_continue_requires_a_waiting_task(gateway: Fixture) -> None:
    _, stub = gateway
    task = (await stub.SubmitTask(submit())).task
    status = await rpc_error(
        stub.ContinueTask(pb.ContinueTaskRequest(task_id=task.task_id, request_id="a", text="km"))
    )
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION
    assert status.reason == "TASK_NOT_WAITING_FOR_INPUT"


async def test_full_queue_is_resource_exhausted_with_retry_info(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEMESH_QUEUE_MAX_DEPTH", "2")
    mesh = await start_mesh(settings, services=["gateway"])
    try:
        stub = GatewayServiceStub(mesh.client("gateway"))
        await stub.SubmitTask(submit(request_id="a"))
        await stub.SubmitTask(submit(request_id="b"))
        status = await rpc_error(stub.SubmitTask(submit(request_id="c")))
        assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert status.reason == "QUEUE_FULL"
        assert status.retry_delay_s is not None
        assert status.retry_delay_s > 0
    finally:
        await mesh.stop()
