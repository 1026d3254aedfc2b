"""A call between two services of one process keeps the gRPC contract whether it goes in-process or
over gRPC on loopback: every test runs on both paths.

The caller holds a stub on a ChannelFactory channel, as a service does (client interceptors on); tool
forwards to memory through the same factory.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest
from google.protobuf import struct_pb2
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.memory.v1 import memory_service_pb2 as mem
from hivemesh.memory.v1 import memory_service_pb2_grpc as mem_grpc
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.errors import FailedPrecondition, NotFound
from hivemesh.mesh.local_channel import LocalChannel
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer, ServiceApp
from hivemesh.mesh.status import details_of, from_rpc_error
from hivemesh.tool.v1 import tool_service_pb2 as tool
from tests.mesh.fixtures import PROBE, RecordingMemory
from tests.mesh.hop import PATHS, Hop, start_hop, stop_hop
from tests.support import rpc_error

# grpc-timeout travels with limited precision and is rounded up: a deadline may arrive a little longer.
ROUNDING_S = 0.01


@pytest.fixture(params=PATHS)
async def hop(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Hop]:
    running = await start_hop(settings, request.param)
    try:
        yield running
    finally:
        await stop_hop(running)


def test_each_hop_takes_the_configured_path(hop: Hop) -> None:
    local = hop.path == "in-process"
    assert hop.channels.is_local("tool") is local
    assert hop.channels.is_local("memory") is local
    assert isinstance(hop.channels.channel("memory"), LocalChannel) is local


async def test_an_invalid_request_names_the_field_before_the_handler_runs(hop: Hop) -> None:
    status = await rpc_error(hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name="")))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.field_violations[0][0] == "tool_name"
    assert (status.reason, status.domain) == ("INVALID_ARGUMENT", "hivemesh.tool")
    assert hop.memory.remaining == []


@pytest.mark.parametrize(
    ("tool_name", "code", "kind", "reason", "metadata"),
    [
        ("missing", grpc.StatusCode.NOT_FOUND, NotFound, "TOOL_NOT_FOUND", {"tool_name": "missing"}),
        (
            "precondition",
            grpc.StatusCode.FAILED_PRECONDITION,
            FailedPrecondition,
            "LIST_FULL",
            {"limit": "3"},
        ),
    ],
)
async def test_a_domain_error_arrives_with_its_code_and_rich_status(
    hop: Hop,
    tool_name: str,
    code: grpc.StatusCode,
    kind: type[Exception],
    reason: str,
    metadata: dict[str, str],
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name=tool_name))
    status = details_of(raised.value)
    assert status.code == code
    assert (status.reason, status.domain, status.metadata) == (reason, "hivemesh.tool", metadata)
    error = from_rpc_error(raised.value)  # as the planner maps it
    assert isinstance(error, kind)
    assert error.reason == reason
    assert error.metadata == {**metadata, "domain": "hivemesh.tool"}


async def test_an_unexpected_error_is_internal_without_its_details(hop: Hop) -> None:
    status = await rpc_error(hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name="boom")))
    assert status.code == grpc.StatusCode.INTERNAL
    assert "secret" not in status.message
    assert "trace id" in status.message


async def test_the_callers_timeout_is_the_callees_time_remaining(hop: Hop) -> None:
    await hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name="forward"), timeout=0.5)
    remaining = hop.memory.remaining[-1]
    assert remaining is not None
    assert 0 < remaining < 0.5 + ROUNDING_S


async def test_a_streaming_call_is_bounded_by_the_inbound_deadline_and_carries_the_request_id(
    hop: Hop,
) -> None:
    reply = await hop.tool.InvokeTool(
        tool.InvokeToolRequest(tool_name="stream"), timeout=0.5, metadata=(("x-request-id", "req-7"),)
    )
    assert reply.display == "counted to 3"
    remaining = hop.forwarding.stream_remaining[-1]
    assert remaining is not None
    assert 0 < remaining < 0.5 + ROUNDING_S
    assert hop.forwarding.stream_request_ids[-1] == "req-7"


async def test_an_expired_deadline_cancels_the_handler(hop: Hop) -> None:
    status = await rpc_error(hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name="slow"), timeout=0.2))
    assert status.code == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(hop.forwarding.cancelled.wait(), 5)
    assert await hop.counted("InvokeTool", "DEADLINE_EXCEEDED") == 1


async def test_cancelling_the_caller_cancels_the_handler(hop: Hop) -> None:
    call = asyncio.ensure_future(hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name="slow")))
    await asyncio.wait_for(hop.forwarding.started.wait(), 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(hop.forwarding.cancelled.wait(), 5)
    assert await hop.counted("InvokeTool", "CANCELLED") == 1


async def test_a_stream_delivers_every_response_then_its_status(hop: Hop) -> None:
    pieces = [p async for p in hop.tool.InvokeToolStream(tool.InvokeToolStreamRequest(tool_name="count"))]
    assert [p.progress.progress for p in pieces[:-1]] == [1, 2, 3]
    assert pieces[-1].result.display == "counted to 3"

    received: list[tool.InvokeToolStreamResponse] = []

    async def drain() -> None:
        async for piece in hop.tool.InvokeToolStream(tool.InvokeToolStreamRequest(tool_name="fail")):
            received.append(piece)

    status = await rpc_error(drain())
    assert len(received) == 1
    assert (status.code, status.reason) == (grpc.StatusCode.NOT_FOUND, "TOOL_GONE")
    assert status.metadata == {"step": "1"}
    assert await hop.counted("InvokeToolStream", "NOT_FOUND") == 1


@pytest.mark.parametrize("how", ["cancel the call", "cancel the reader"])
async def test_a_stream_its_caller_gives_up_on_cancels_the_handler(hop: Hop, how: str) -> None:
    call = hop.tool.InvokeToolStream(tool.InvokeToolStreamRequest(tool_name="slow"))
    first = await call.read()
    assert isinstance(first, tool.InvokeToolStreamResponse)
    assert first.progress.progress == 1
    if how == "cancel the call":
        call.cancel()
    else:
        reader = asyncio.ensure_future(call.read())
        await asyncio.sleep(0.05)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
    await asyncio.wait_for(hop.forwarding.cancelled.wait(), 5)
    assert await hop.counted("InvokeToolStream", "CANCELLED") == 1


async def test_a_stream_that_never_waits_stops_when_its_caller_does(hop: Hop) -> None:
    call = hop.tool.InvokeToolStream(tool.InvokeToolStreamRequest(tool_name="endless"))
    assert await call.read() is not grpc.aio.EOF  # type: ignore[attr-defined]  # missing from the stubs
    call.cancel()
    await asyncio.wait_for(hop.forwarding.cancelled.wait(), 5)


async def test_the_trace_context_reaches_the_callee(hop: Hop) -> None:
    caller = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with trace.use_span(NonRecordingSpan(caller)):
        await hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name="forward"))
    # Two hops on: caller -> tool -> memory.
    assert hop.memory.traceparents[-1].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"


async def test_the_callee_sees_nothing_of_its_callers_context_but_metadata(hop: Hop) -> None:
    token = PROBE.set("set by the caller")
    try:
        reply = await hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name="probe"))
    finally:
        PROBE.reset(token)
    assert reply.display == "unset"


async def test_caller_and_callee_never_share_a_message(hop: Hop) -> None:
    request = tool.InvokeToolRequest(tool_name="mutate", task_id="t-1")
    reply = await hop.tool.InvokeTool(request)
    assert request.task_id == "t-1"
    reply.display = "changed by the caller"
    assert hop.forwarding.last_response is not None
    assert hop.forwarding.last_response.display == "kept by the callee"


async def test_calls_are_counted_by_method_and_code(hop: Hop) -> None:
    await hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name="forward"))
    await rpc_error(hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name="missing")))
    assert await hop.counted("InvokeTool", "OK") == 1
    assert await hop.counted("InvokeTool", "NOT_FOUND") == 1
    assert hop.count("GetContext", "OK", service="hivemesh.memory.v1.MemoryService") == 1


async def test_a_stopping_server_finishes_calls_in_flight_then_refuses(hop: Hop) -> None:
    in_flight = asyncio.ensure_future(hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name="slow")))
    await asyncio.wait_for(hop.forwarding.started.wait(), 5)
    await hop.tool_server.stop(5.0)
    assert (await in_flight).display == "slow done"
    refused = await rpc_error(hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name="forward"), timeout=2))
    assert refused.code == grpc.StatusCode.UNAVAILABLE


async def test_a_call_still_running_after_the_grace_period_is_cut_off(hop: Hop) -> None:
    in_flight = asyncio.ensure_future(hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name="slow")))
    await asyncio.wait_for(hop.forwarding.started.wait(), 5)
    await hop.tool_server.stop(0.1)
    status = await rpc_error(in_flight)
    assert status.code == grpc.StatusCode.UNAVAILABLE
    await asyncio.wait_for(hop.forwarding.cancelled.wait(), 5)


@pytest.mark.parametrize("path", PATHS)
async def test_a_message_over_the_size_limit_is_refused(settings: Settings, path: str) -> None:
    small = replace(settings, server=replace(settings.server, max_message_bytes=1024))
    running = await start_hop(small, path)
    try:
        arguments = struct_pb2.Struct()
        arguments.update({"text": "x" * 2048})
        status = await rpc_error(
            running.tool.InvokeTool(tool.InvokeToolRequest(tool_name="t", arguments=arguments))
        )
    finally:
        await stop_hop(running)
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max (2" in status.message


@pytest.mark.parametrize("path", PATHS)
async def test_calls_beyond_the_concurrency_limit_are_refused(settings: Settings, path: str) -> None:
    narrow = replace(settings, server=replace(settings.server, max_concurrent_rpcs=1))
    running = await start_hop(narrow, path)
    try:
        slow = asyncio.ensure_future(running.tool.InvokeTool(tool.InvokeToolRequest(tool_name="slow")))
        await asyncio.wait_for(running.forwarding.started.wait(), 5)
        status = await rpc_error(running.tool.InvokeTool(tool.InvokeToolRequest(tool_name="probe")))
        assert (await slow).display == "slow done"
    finally:
        await stop_hop(running)
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("path", PATHS)
async def test_a_call_to_a_server_not_yet_serving_fails_or_waits_for_it(
    settings: Settings, path: str
) -> None:
    settings = replace(settings, local_calls=path == "in-process")
    channels = ChannelFactory(settings)
    memory = RecordingMemory()  # type: ignore[abstract]  # a partial servicer: the rest answer UNIMPLEMENTED
    port = free_port()
    server = MeshServer(
        ServiceApp("memory", lambda s: mem_grpc.add_MemoryServiceServicer_to_server(memory, s)),
        settings.server,
        port,
        Metrics(),
    )
    channels.serve_locally(server.local)
    channels.set_address("memory", f"127.0.0.1:{port}")
    stub = mem_grpc.MemoryServiceStub(channels.channel("memory"))
    request = mem.GetContextRequest(scope=Scope(tenant_id="t", user_id="u", session_id="s"))
    try:
        refused = await rpc_error(stub.GetContext(request, timeout=5))
        waiting = asyncio.ensure_future(stub.GetContext(request, timeout=10, wait_for_ready=True))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await server.start()
        await waiting
    finally:
        await server.stop(0.5)
        await channels.close()
    assert refused.code == grpc.StatusCode.UNAVAILABLE
    assert len(memory.remaining) == 1
