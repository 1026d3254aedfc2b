"""The shared runtime: health, reflection names, error mapping, validation, metrics, deadlines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hivemesh.memory.v1 import memory_service_pb2_grpc as mem_grpc
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer, ServiceApp
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1 import tool_service_pb2_grpc as tool_grpc
from tests.mesh.fixtures import ForwardingTool, RecordingMemory
from tests.support import rpc_error


@dataclass
class Pair:
    tool: tool_grpc.ToolServiceAsyncStub
    memory: RecordingMemory
    metrics: Metrics
    servers: list[MeshServer]
    channel: grpc.aio.Channel


@pytest.fixture
async def pair(settings: Settings) -> AsyncIterator[Pair]:
    metrics = Metrics()
    memory = RecordingMemory()  # type: ignore[abstract]  # a partial servicer: the rest answer UNIMPLEMENTED
    memory_server = MeshServer(
        ServiceApp("memory", lambda s: mem_grpc.add_MemoryServiceServicer_to_server(memory, s)),
        settings.server,
        0,
        metrics,
    )
    await memory_server.start()
    channels = ChannelFactory(settings, {"memory": f"127.0.0.1:{memory_server.port}"})
    forwarding = ForwardingTool(channels)  # type: ignore[abstract]  # as above
    tool_server = MeshServer(
        ServiceApp("tool", lambda s: tool_grpc.add_ToolServiceServicer_to_server(forwarding, s)),
        settings.server,
        0,
        metrics,
    )
    await tool_server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{tool_server.port}")
    try:
        yield Pair(tool_grpc.ToolServiceStub(channel), memory, metrics, [tool_server, memory_server], channel)
    finally:
        await channel.close(None)
        for server in (tool_server, memory_server):
            await server.stop(0.5)
        await channels.close()


async def test_health_answers_for_every_name(pair: Pair) -> None:
    health = health_pb2_grpc.HealthStub(pair.channel)
    for name in ("", "liveness", "readiness", "hivemesh.tool.v1.ToolService"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert response.status == health_pb2.HealthCheckResponse.SERVING, name
    status = await rpc_error(health.Check(health_pb2.HealthCheckRequest(service="hivemesh.nope.v1.Nope")))
    assert status.code == grpc.StatusCode.NOT_FOUND


async def test_downstream_call_is_bounded_by_the_inbound_deadline(pair: Pair) -> None:
    await pair.tool.InvokeTool(tool.InvokeToolRequest(tool_name="forward"), timeout=0.2)
    remaining = pair.memory.remaining[-1]
    assert remaining is not None
    assert 0 < remaining <= 0.2


async def test_a_call_without_deadline_gets_the_default_not_infinity(pair: Pair, settings: Settings) -> None:
    await pair.tool.InvokeTool(tool.InvokeToolRequest(tool_name="forward"))
    remaining = pair.memory.remaining[-1]
    assert remaining is not None
    # grpc-timeout travels with limited precision and is rounded up, hence the small allowance.
    assert 0 < remaining <= settings.default_call_timeout_s + 0.5


async def test_request_id_travels_downstream(pair: Pair) -> None:
    await pair.tool.InvokeTool(
        tool.InvokeToolRequest(tool_name="forward"), metadata=(("x-request-id", "req-42"),)
    )
    assert pair.memory.request_ids[-1] == "req-42"


async def test_domain_error_becomes_its_code_with_error_info(pair: Pair) -> None:
    status = await rpc_error(pair.tool.InvokeTool(tool.InvokeToolRequest(tool_name="missing")))
    assert status.code == grpc.StatusCode.NOT_FOUND
    assert status.reason == "TOOL_NOT_FOUND"
    assert status.domain == "hivemesh.tool"
    assert status.metadata == {"tool_name": "missing"}


async def test_unexpected_error_is_internal_without_leaking_details(pair: Pair) -> None:
    status = await rpc_error(pair.tool.InvokeTool(tool.InvokeToolRequest(tool_name="boom")))
    assert status.code == grpc.StatusCode.INTERNAL
    assert "secret" not in status.message
    assert "trace id" in status.message


async def test_invalid_request_is_rejected_before_the_servicer(pair: Pair) -> None:
    status = await rpc_error(pair.tool.InvokeTool(tool.InvokeToolRequest(tool_name="")))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.field_violations[0][0] == "tool_name"
    assert pair.memory.remaining == []


async def test_metrics_count_calls_by_code(pair: Pair) -> None:
    await pair.tool.InvokeTool(tool.InvokeToolRequest(tool_name="forward"))
    await rpc_error(pair.tool.InvokeTool(tool.InvokeToolRequest(tool_name="missing")))
    registry = pair.metrics.registry

    def count(code: str) -> float:
        value = registry.get_sample_value(
            "grpc_server_handled_total",
            {
                "grpc_type": "unary",
                "grpc_service": "hivemesh.tool.v1.ToolService",
                "grpc_method": "InvokeTool",
                "grpc_code": code,
                "release": pair.metrics.release,
            },
        )
        return value or 0.0

    assert count("OK") == 1
    assert count("NOT_FOUND") == 1
