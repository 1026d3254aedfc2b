"""GatewayService.GetMemoryUsage: the counts of a tenant's memory through the gateway, against a
real gateway, tool and memory service on port 0 with API keys: each credential counts its own
tenant only, a viewer may count, bad input names its field."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.gateway.keys import VIEWER
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.config import Settings
from tests.support import key_metadata, rpc_error, start_mesh

SERVICES = ["gateway", "tool", "memory"]


def add_to_list(user: str, request_id: str) -> pb.InvokeToolRequest:
    arguments = Struct()
    json_format.ParseDict({"list": "shopping", "items": ["milk"]}, arguments)
    return pb.InvokeToolRequest(
        request_id=request_id, tool_name="list_add", arguments=arguments, scope=Scope(user_id=user)
    )


async def test_each_credential_counts_its_own_tenant_only(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEMESH_AUTH", "required")
    acme, globex = await key_metadata(settings, "acme", "globex")
    (viewer,) = await key_metadata(settings, "acme", role=VIEWER)
    mesh = await start_mesh(settings, services=SERVICES)
    try:
        stub = GatewayServiceStub(mesh.client("gateway"))
        # Two users of acme keep a list each (a structured record of memory).
        await stub.InvokeTool(add_to_list("ana", "r1"), metadata=acme)
        await stub.InvokeTool(add_to_list("bob", "r2"), metadata=acme)

        mine: pb.GetMemoryUsageResponse = await stub.GetMemoryUsage(pb.GetMemoryUsageRequest(), metadata=acme)
        assert mine.tenant_id == "acme"
        assert (mine.usage.structured.store, mine.usage.structured.items) == ("sqlite", 2)
        assert mine.usage.long_term.store == "qdrant-edge"
        ana: pb.GetMemoryUsageResponse = await stub.GetMemoryUsage(
            pb.GetMemoryUsageRequest(user_id="ana"), metadata=acme
        )
        assert ana.usage.structured.items == 1
        # A viewer may read the counts of its tenant.
        seen: pb.GetMemoryUsageResponse = await stub.GetMemoryUsage(
            pb.GetMemoryUsageRequest(tenant_id="acme"), metadata=viewer
        )
        assert seen.usage.structured.items == 2

        theirs: pb.GetMemoryUsageResponse = await stub.GetMemoryUsage(
            pb.GetMemoryUsageRequest(), metadata=globex
        )
        assert (theirs.tenant_id, theirs.usage.structured.items) == ("globex", 0)
        foreign = await rpc_error(
            stub.GetMemoryUsage(pb.GetMemoryUsageRequest(tenant_id="acme"), metadata=globex)
        )
        assert (foreign.code, foreign.reason) == (grpc.StatusCode.PERMISSION_DENIED, "TENANT_MISMATCH")
        anonymous = await rpc_error(stub.GetMemoryUsage(pb.GetMemoryUsageRequest()))
        assert anonymous.code == grpc.StatusCode.UNAUTHENTICATED

        for request, field in (
            (pb.GetMemoryUsageRequest(tenant_id="no spaces"), "tenant_id"),
            (pb.GetMemoryUsageRequest(user_id="/etc"), "user_id"),
        ):
            bad = await rpc_error(stub.GetMemoryUsage(request, metadata=acme))
            assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
            assert [f for f, _ in bad.field_violations] == [field]
    finally:
        await mesh.stop()
