"""GatewayService.WatchTasks against a real gateway on port 0: the newest page of the caller's
tasks at once, then again as tasks are submitted and change; filters and tenants as ListTasks;
bad input names its field."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import TaskState
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.config import Settings
from tests.support import RunningMesh, key_metadata, rpc_error, start_mesh

# Long enough on a loaded machine; a page that changed arrives far sooner.
WAIT_S = 20.0


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[RunningMesh]:
    # The gateway alone: tasks stay queued (no planner), which is all a watch of the list needs.
    mesh = await start_mesh(settings, services=["gateway"])
    try:
        yield mesh
    finally:
        await mesh.stop()


def submit(user: str, text: str) -> pb.SubmitTaskRequest:
    return pb.SubmitTaskRequest(
        request_id=uuid.uuid4().hex, text=text, scope=Scope(user_id=user, session_id="s1")
    )


async def test_the_page_comes_at_once_and_again_as_tasks_come_and_change(gateway: RunningMesh) -> None:
    stub = GatewayServiceStub(gateway.client("gateway"))
    watch = stub.WatchTasks(pb.WatchTasksRequest(user_id="watcher"))
    pages = aiter(watch)
    try:
        first: pb.WatchTasksResponse = await asyncio.wait_for(anext(pages), WAIT_S)
        assert list(first.tasks) == []
        made: pb.SubmitTaskResponse = await stub.SubmitTask(submit("watcher", "what is 1 + 1?"))
        # Another user's task is not on this page.
        await stub.SubmitTask(submit("someone-else", "what is 2 + 2?"))
        shown: pb.WatchTasksResponse = await asyncio.wait_for(anext(pages), WAIT_S)
        assert [(t.task_id, t.state) for t in shown.tasks] == [
            (made.task.task_id, TaskState.TASK_STATE_SUBMITTED)
        ]
        await stub.CancelTask(pb.CancelTaskRequest(task_id=made.task.task_id, reason="enough"))
        changed: pb.WatchTasksResponse = await asyncio.wait_for(anext(pages), WAIT_S)
        assert [(t.task_id, t.state) for t in changed.tasks] == [
            (made.task.task_id, TaskState.TASK_STATE_CANCELED)
        ]
    finally:
        watch.cancel()


async def test_the_filters_apply_and_bad_ones_name_their_field(gateway: RunningMesh) -> None:
    stub = GatewayServiceStub(gateway.client("gateway"))
    await stub.SubmitTask(submit("filtered", "what is 3 + 3?"))
    watch = stub.WatchTasks(pb.WatchTasksRequest(user_id="filtered", states=[TaskState.TASK_STATE_COMPLETED]))
    try:
        first: pb.WatchTasksResponse = await asyncio.wait_for(anext(aiter(watch)), WAIT_S)
        assert list(first.tasks) == []  # submitted, not completed
    finally:
        watch.cancel()
    for request, field in (
        (pb.WatchTasksRequest(page_size=201), "page_size"),
        (pb.WatchTasksRequest(tenant_id="no spaces"), "tenant_id"),
        (pb.WatchTasksRequest(states=[TaskState.TASK_STATE_UNSPECIFIED]), "states"),
    ):
        bad = await rpc_error(anext(aiter(stub.WatchTasks(request))))
        assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in bad.field_violations] == [field]


async def test_a_credential_watches_its_own_tenant_only(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEMESH_AUTH", "required")
    acme, globex = await key_metadata(settings, "acme", "globex")
    mesh = await start_mesh(settings, services=["gateway"])
    try:
        stub = GatewayServiceStub(mesh.client("gateway"))
        await stub.SubmitTask(submit("ana", "what is 4 + 4?"), metadata=acme)
        watch = stub.WatchTasks(pb.WatchTasksRequest(), metadata=globex)
        try:
            theirs: pb.WatchTasksResponse = await asyncio.wait_for(anext(aiter(watch)), WAIT_S)
            assert list(theirs.tasks) == []
        finally:
            watch.cancel()
        foreign = await rpc_error(
            anext(aiter(stub.WatchTasks(pb.WatchTasksRequest(tenant_id="acme"), metadata=globex)))
        )
        assert (foreign.code, foreign.reason) == (grpc.StatusCode.PERMISSION_DENIED, "TENANT_MISMATCH")
        anonymous = await rpc_error(anext(aiter(stub.WatchTasks(pb.WatchTasksRequest()))))
        assert anonymous.code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await mesh.stop()
