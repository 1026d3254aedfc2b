"""Releases: every service answers GetRelease, every run records the release it ran on, and the
metrics of finished tasks and of RPCs carry the release label. All five services real, on port 0."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import json_format

from hivemesh.common.v1.release_pb2 import ReleasePart
from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import TaskEvent, TaskState
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.language.app import BUILTIN_LLM, BUILTIN_ROUTER
from hivemesh.language.models import SHIPPED_INTENTS, shipped_router
from hivemesh.mesh.config import SERVICES
from hivemesh.release.v1 import release_service_pb2 as pb
from hivemesh.release.v1.release_service_pb2_grpc import ReleaseServiceStub
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub
from tests.support import RunningMesh, make_settings, start_mesh

pytestmark = pytest.mark.slow

VERSION, REVISION = "2.3.4", "7d9f8c6b5a"


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[RunningMesh]:
    settings = make_settings(tmp_path / "data", HIVEMESH_RELEASE=VERSION, HIVEMESH_REVISION=REVISION)
    running = await start_mesh(settings)
    try:
        yield running
    finally:
        await running.stop()


async def release_of(mesh: RunningMesh, service: str) -> ReleasePart:
    # No credential: like health, the release is open to any caller.
    response = await ReleaseServiceStub(mesh.bare_client(service)).GetRelease(pb.GetReleaseRequest())
    return response.release


async def execute(mesh: RunningMesh, text: str, request_id: str) -> list[TaskEvent]:
    stub = GatewayServiceStub(mesh.client("gateway"))
    request = gw.ExecuteTaskRequest(
        request_id=request_id, text=text, scope=Scope(user_id="ana", session_id="s1")
    )
    return [response.event async for response in stub.ExecuteTask(request)]


async def test_every_service_reports_its_release(mesh: RunningMesh) -> None:
    for service in SERVICES:
        part = await release_of(mesh, service)
        assert (part.service, part.version, part.revision, part.label) == (
            service,
            VERSION,
            REVISION,
            REVISION,
        )
    language = await release_of(mesh, "language")
    assert language.router.id == BUILTIN_ROUTER
    assert re.fullmatch("[0-9a-f]{64}", language.router.sha256)
    assert language.llm.id == BUILTIN_LLM
    # The hash is of the router's content: the copy cached on disk hashes the same.
    cached = shipped_router(SHIPPED_INTENTS, mesh.settings.data_dir / "nlu")
    assert cached.sha256() == language.router.sha256
    tools = await ToolServiceStub(mesh.client("tool")).ListTools(tool.ListToolsRequest(page_size=1000))
    assert (await release_of(mesh, "tool")).tool_catalogue_version == tools.catalogue_version
    assert not (await release_of(mesh, "planner")).prompt_version  # the built-in strategy


async def test_a_task_records_the_release_it_ran_on(mesh: RunningMesh) -> None:
    events = await execute(mesh, "what is 2 + 2?", "release-1")
    assert events[-1].completed.answer == "4"
    working = [
        e.state_changed
        for e in events
        if e.WhichOneof("kind") == "state_changed" and e.state_changed.state == TaskState.TASK_STATE_WORKING
    ]
    assert len(working) == 1
    parts = {part.service: part for part in working[0].release.parts}
    assert list(parts) == ["planner", "language", "memory", "tool"]
    assert all(p.version == VERSION and p.label == REVISION for p in parts.values())
    assert parts["language"].router == (await release_of(mesh, "language")).router
    assert parts["tool"].tool_catalogue_version == (await release_of(mesh, "tool")).tool_catalogue_version

    task = await GatewayServiceStub(mesh.client("gateway")).GetTask(
        gw.GetTaskRequest(task_id=events[0].task_id)
    )
    assert task.task.release == working[0].release
    # What `hivemesh task get --json` prints.
    shown = json_format.MessageToDict(task.task, preserving_proto_field_name=True)
    assert shown["release"]["parts"][1]["router"]["sha256"] == parts["language"].router.sha256


async def test_finished_tasks_and_rpcs_are_counted_by_release(mesh: RunningMesh) -> None:
    await execute(mesh, "what is 3 + 4?", "release-2")
    registry = mesh.metrics.registry

    def ended(service: str) -> float | None:
        return registry.get_sample_value(
            "hivemesh_tasks_by_release_total", {"service": service, "release": REVISION, "state": "COMPLETED"}
        )

    for _ in range(100):  # counted just after the stream's last event
        if ended("tool") is not None:
            break
        await asyncio.sleep(0.02)
    assert [ended(service) for service in ("planner", "language", "tool")] == [1.0, 1.0, 1.0]
    understood = registry.get_sample_value(
        "grpc_server_handling_seconds_count",
        {
            "grpc_type": "unary",
            "grpc_service": "hivemesh.language.v1.LanguageService",
            "grpc_method": "Understand",
            "release": REVISION,
        },
    )
    assert understood is not None
    assert understood >= 1
