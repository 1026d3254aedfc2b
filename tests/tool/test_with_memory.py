"""The list and reminder tools against the real memory service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest
from google.protobuf import json_format, struct_pb2

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.mesh.config import Settings
from hivemesh.tool.v1 import tool_service_pb2 as pb
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub
from tests.support import start_mesh

if TYPE_CHECKING:
    from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceAsyncStub as Stub

SCOPE = Scope(tenant_id="acme", user_id="ada", session_id="s1")


def call(tool: str, **values: Any) -> pb.InvokeToolRequest:
    arguments = struct_pb2.Struct()
    arguments.update(values)
    return pb.InvokeToolRequest(tool_name=tool, arguments=arguments, scope=SCOPE, task_id="task-1")


def items(reply: pb.InvokeToolResponse) -> list[str]:
    return [str(i) for i in json_format.MessageToDict(reply.result)["items"]]


@pytest.fixture
async def stub(settings: Settings) -> AsyncIterator[Stub]:
    mesh = await start_mesh(settings, services=["memory", "tool"])
    try:
        client: Stub = ToolServiceStub(mesh.client("tool"))
        yield client
    finally:
        await mesh.stop()


async def test_lists_live_in_memory(stub: Stub) -> None:
    await stub.InvokeTool(call("list_add", list="Shopping", items=["milk", "eggs"]))
    await asyncio.gather(
        *(stub.InvokeTool(call("list_add", list="shopping", items=[f"item {i}"])) for i in range(5))
    )
    shown = await stub.InvokeTool(call("list_show", list="shopping"))
    assert sorted(items(shown)) == sorted(["milk", "eggs", *(f"item {i}" for i in range(5))])
    removed = await stub.InvokeTool(call("list_remove", list="shopping", items=["EGGS"]))
    assert "eggs" not in items(removed)
    cleared = await stub.InvokeTool(call("list_clear", list="shopping"))
    assert cleared.display == "Cleared your shopping list (6 items)"
    assert (
        await stub.InvokeTool(call("list_show", list="shopping"))
    ).display == "Your shopping list is empty"


async def test_a_timer_is_stored_as_a_reminder_record(stub: Stub) -> None:
    reply = await stub.InvokeTool(call("set_timer", seconds=300, label="tea"))
    assert reply.display == "Timer set for 5 minutes: tea"
    assert json_format.MessageToDict(reply.result)["kind"] == "timer"
