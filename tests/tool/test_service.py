from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import struct_pb2

from hivemesh.mesh.config import Settings
from hivemesh.tool.app import build_app
from hivemesh.tool.config import ToolConfig
from hivemesh.tool.v1 import tool_service_pb2 as pb
from tests.support import rpc_error, start_mesh
from tests.tool.fakes import InMemoryRecords, RecordingScheduler
from tests.tool.serving import channels, serving
from tests.tool.slow_tools import Probe, make_tools

if TYPE_CHECKING:
    from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceAsyncStub as Stub


def args(**values: Any) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
async def stub(settings: Settings, probe: Probe) -> AsyncIterator[Stub]:
    app = build_app(
        settings,
        channels(settings),
        ToolConfig(random_seed=1),
        records=InMemoryRecords(),
        scheduler=RecordingScheduler(),
        extra_tools=make_tools(probe),
    )
    async with serving(app, settings) as client:
        yield client


async def test_the_default_build_serves_the_built_ins(settings: Settings) -> None:
    mesh = await start_mesh(settings, services=["tool"])
    try:
        from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub  # noqa: PLC0415

        client: Stub = ToolServiceStub(mesh.client("tool"))
        reply = await client.InvokeTool(
            pb.InvokeToolRequest(tool_name="calculator", arguments=args(expression="12 * (3 + 4)"))
        )
        assert reply.display == "84"
    finally:
        await mesh.stop()


async def test_list_tools_pages_by_name(stub: Stub) -> None:
    names: list[str] = []
    token = ""
    while True:
        page = await stub.ListTools(pb.ListToolsRequest(page_size=4, page_token=token))
        assert len(page.tools) <= 4
        names += [t.name for t in page.tools]
        token = page.next_page_token
        if not token:
            break
    assert names == sorted(names)
    assert {"calculator", "list_add", "spell", "sleepy"} <= set(names)
    calculator = next(
        t for t in (await stub.ListTools(pb.ListToolsRequest())).tools if t.name == "calculator"
    )
    assert calculator.source == "builtin"
    assert calculator.timeout.ToTimedelta().total_seconds() == 2.0
    assert calculator.arguments_schema["required"]  # a JSON Schema the planner can check plans against


async def test_a_bad_page_token_is_an_invalid_argument(stub: Stub) -> None:
    error = await rpc_error(stub.ListTools(pb.ListToolsRequest(page_token="%%%")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.metadata["field"] == "page_token"


async def test_errors_carry_codes_reasons_and_fields(stub: Stub) -> None:
    missing = await rpc_error(stub.InvokeTool(pb.InvokeToolRequest(tool_name="teleport")))
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "TOOL_NOT_FOUND")
    bad = await rpc_error(
        stub.InvokeTool(pb.InvokeToolRequest(tool_name="roll_dice", arguments=args(count=500)))
    )
    assert (bad.code, bad.reason, bad.metadata["field"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_TOOL_ARGUMENTS",
        "arguments.count",
    )
    assert bad.field_violations[0][0] == "arguments.count"
    zero = await rpc_error(
        stub.InvokeTool(pb.InvokeToolRequest(tool_name="calculator", arguments=args(expression="1/0")))
    )
    assert (zero.code, zero.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "DIVISION_BY_ZERO")
    slow = await rpc_error(
        stub.InvokeTool(pb.InvokeToolRequest(tool_name="sleepy", arguments=args(seconds=5)))
    )
    assert (slow.code, slow.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "TOOL_TIMEOUT")
    broken = await rpc_error(stub.InvokeTool(pb.InvokeToolRequest(tool_name="broken")))
    assert (broken.code, broken.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TOOL_FAILED")


async def test_a_full_bulkhead_answers_resource_exhausted_with_retry_info(stub: Stub, probe: Probe) -> None:
    calls = [
        asyncio.ensure_future(
            stub.InvokeTool(pb.InvokeToolRequest(tool_name="patient", arguments=args(seconds=0.5)))
        )
        for _ in range(8)
    ]
    await probe.started.wait()
    await asyncio.sleep(0.1)
    error = await rpc_error(
        stub.InvokeTool(pb.InvokeToolRequest(tool_name="patient", arguments=args(seconds=0)))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOOL_BUSY")
    assert error.retry_delay_s is not None
    assert error.retry_delay_s > 0
    prompt = await stub.InvokeTool(pb.InvokeToolRequest(tool_name="spell", arguments=args(word="ok")))
    assert prompt.display == "O-K"
    assert all(not c.done() for c in calls)
    await asyncio.gather(*calls)


async def test_an_idempotency_key_replays_the_first_result(stub: Stub, probe: Probe) -> None:
    request = pb.InvokeToolRequest(tool_name="patient", arguments=args(seconds=0), idempotency_key="task-9:3")
    first, second = await stub.InvokeTool(request), await stub.InvokeTool(request)
    assert (first.replayed, second.replayed, probe.runs) == (False, True, 1)
    assert second.display == first.display


async def test_cancelling_the_rpc_stops_the_tool(stub: Stub, probe: Probe) -> None:
    call = stub.InvokeTool(pb.InvokeToolRequest(tool_name="patient", arguments=args(seconds=30)))
    await probe.started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    for _ in range(50):
        if probe.cancelled:
            break
        await asyncio.sleep(0.02)
    assert probe.cancelled == 1


async def test_a_keyed_side_effect_outlives_its_cancelled_rpc_and_is_replayed(
    stub: Stub, probe: Probe
) -> None:
    request = pb.InvokeToolRequest(
        tool_name="patient", arguments=args(seconds=0.3), idempotency_key="task-9:4"
    )
    first = stub.InvokeTool(request)
    await probe.started.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    retry = await stub.InvokeTool(request)
    assert (retry.replayed, retry.display, probe.runs, probe.cancelled) == (True, "run 1", 1, 0)


async def test_invoke_tool_stream_sends_progress_then_the_result(stub: Stub) -> None:
    request = pb.InvokeToolStreamRequest(tool_name="sleepy", arguments=args(seconds=0.05))
    pieces = [piece async for piece in stub.InvokeToolStream(request)]
    assert [p.WhichOneof("kind") for p in pieces] == ["progress"] * 10 + ["result"]
    assert (pieces[3].progress.progress, pieces[3].progress.total) == (3, 10)
    assert pieces[-1].result.display == "slept 0.05s"


async def test_a_failing_stream_ends_with_the_tools_error(stub: Stub) -> None:
    stream = stub.InvokeToolStream(pb.InvokeToolStreamRequest(tool_name="sleepy", arguments=args(seconds=5)))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stream:
            pass
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
