"""GatewayService.ListTools and InvokeTool: tools called directly through the gateway, against a
real gateway, tool and memory service on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypeAlias

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.config import Settings
from tests.support import RunningMesh, key_metadata, rpc_error, start_mesh

if TYPE_CHECKING:
    from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceAsyncStub

Fixture: TypeAlias = "tuple[RunningMesh, GatewayServiceAsyncStub]"
SERVICES = ["gateway", "tool", "memory"]


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Fixture]:
    mesh = await start_mesh(settings, services=SERVICES)
    try:
        yield mesh, GatewayServiceStub(mesh.client("gateway"))
    finally:
        await mesh.stop()


def call(tool: str, arguments: dict[str, object], request_id: str, user: str = "ana") -> pb.InvokeToolRequest:
    args = Struct()
    json_format.ParseDict(arguments, args)
    return pb.InvokeToolRequest(
        request_id=request_id, tool_name=tool, arguments=args, scope=Scope(user_id=user)
    )


async def test_list_tools_gives_every_tool_with_its_schemas(gateway: Fixture) -> None:
    _, stub = gateway
    first: pb.ListToolsResponse = await stub.ListTools(pb.ListToolsRequest(page_size=3))
    assert len(first.tools) == 3
    assert first.next_page_token
    everything: pb.ListToolsResponse = await stub.ListTools(pb.ListToolsRequest())
    by_name = {t.name: t for t in everything.tools}
    assert {"calculator", "list_add", "list_show"} <= set(by_name)
    schema = json_format.MessageToDict(by_name["calculator"].arguments_schema)
    assert schema["type"] == "object"
    assert "expression" in schema["properties"]
    assert [t.name for t in first.tools] == [t.name for t in everything.tools[:3]]


async def test_invoke_tool_runs_it_once_per_request_id(gateway: Fixture) -> None:
    _, stub = gateway
    result: pb.InvokeToolResponse = await stub.InvokeTool(call("calculator", {"expression": "6 * 7"}, "c1"))
    assert result.display == "42"
    assert not result.replayed
    add = call("list_add", {"list": "todo", "items": ["a"]}, "a1")
    added: pb.InvokeToolResponse = await stub.InvokeTool(add)
    again: pb.InvokeToolResponse = await stub.InvokeTool(add)
    assert again.replayed
    assert again.display == added.display
    # The same request id for another call is refused, not answered with the first result.
    status = await rpc_error(stub.InvokeTool(call("list_add", {"list": "todo", "items": ["b"]}, "a1")))
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION


async def test_bad_arguments_and_a_missing_user_are_invalid_argument(gateway: Fixture) -> None:
    _, stub = gateway
    status = await rpc_error(stub.InvokeTool(call("calculator", {"expression": 12}, "c2")))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert any(field.startswith("arguments") for field, _ in status.field_violations)
    status = await rpc_error(stub.InvokeTool(call("calculator", {"expression": "1"}, "c3", user="")))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in status.field_violations] == ["scope.user_id"]
    status = await rpc_error(stub.InvokeTool(call("no_such_tool", {}, "c4")))
    assert status.code == grpc.StatusCode.NOT_FOUND


async def test_each_tenant_sees_its_own_data(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVEMESH_AUTH", "required")
    acme, globex = await key_metadata(settings, "acme", "globex")
    mesh = await start_mesh(settings, services=SERVICES)
    try:
        stub = GatewayServiceStub(mesh.client("gateway"))
        status = await rpc_error(stub.ListTools(pb.ListToolsRequest()))
        assert status.code == grpc.StatusCode.UNAUTHENTICATED
        await stub.InvokeTool(call("list_add", {"list": "shopping", "items": ["milk"]}, "s1"), metadata=acme)
        mine = await stub.InvokeTool(call("list_show", {"list": "shopping"}, "s2"), metadata=acme)
        theirs = await stub.InvokeTool(call("list_show", {"list": "shopping"}, "s2"), metadata=globex)
        assert json_format.MessageToDict(mine.result)["items"] == ["milk"]
        assert json_format.MessageToDict(theirs.result)["items"] == []
        assert not theirs.replayed  # the same request id in another tenant is another call
        foreign = call("list_show", {"list": "shopping"}, "s3")
        foreign.scope.tenant_id = "acme"
        status = await rpc_error(stub.InvokeTool(foreign, metadata=globex))
        assert status.code == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await mesh.stop()
