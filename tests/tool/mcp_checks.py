"""Checks that hold for an attached MCP server whatever its transport (stdio or streamable HTTP);
``server`` is the name the bridge gives its tools (``<server>.<tool>``)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import struct_pb2

from hivemesh.tool.v1 import tool_service_pb2 as pb
from tests.support import rpc_error

if TYPE_CHECKING:
    from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceAsyncStub as Stub


def args(**values: Any) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(values)
    return result


async def error_results_fail_the_call_clearly(stub: Stub, server: str) -> None:
    error = await rpc_error(stub.InvokeTool(pb.InvokeToolRequest(tool_name=f"{server}.fail")))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TOOL_FAILED")
    assert "out of order" in error.message


async def progress_is_streamed(stub: Stub, server: str) -> None:
    request = pb.InvokeToolStreamRequest(tool_name=f"{server}.count", arguments=args(steps=3))
    pieces = [piece async for piece in stub.InvokeToolStream(request)]
    progress = [(p.progress.progress, p.progress.total, p.progress.message) for p in pieces[:-1]]
    assert progress == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    assert pieces[-1].result.display == "counted 3"


async def a_silent_server_is_bounded_by_the_deadline(stub: Stub, server: str) -> None:
    error = await rpc_error(stub.InvokeTool(pb.InvokeToolRequest(tool_name=f"{server}.hang"), timeout=0.5))
    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED
    # The server and the service both keep serving.
    reply = await stub.InvokeTool(
        pb.InvokeToolRequest(tool_name=f"{server}.echo", arguments=args(text="still here"))
    )
    assert reply.display == "still here"


async def _until_listed(stub: Stub, name: str, *, present: bool) -> pb.ListToolsResponse:
    deadline = time.monotonic() + 10
    while True:
        listed = await stub.ListTools(pb.ListToolsRequest(page_size=1000))
        if (name in {t.name for t in listed.tools}) == present:
            return listed
        assert time.monotonic() < deadline, f"{name} was {'never' if present else 'still'} listed"
        await asyncio.sleep(0.05)


async def announced_tools_come_and_go(stub: Stub, server: str) -> None:
    """A server that announces a change of its tools is listed again, without a restart."""
    before = await stub.ListTools(pb.ListToolsRequest(page_size=1000))
    shout = f"{server}.shout"
    await stub.InvokeTool(pb.InvokeToolRequest(tool_name=f"{server}.learn", arguments=args(name="shout")))
    listed = await _until_listed(stub, shout, present=True)
    assert listed.catalogue_version != before.catalogue_version
    reply = await stub.InvokeTool(pb.InvokeToolRequest(tool_name=shout))
    assert reply.display == "shout"
    assert reply.catalogue_version == listed.catalogue_version

    await stub.InvokeTool(pb.InvokeToolRequest(tool_name=f"{server}.unlearn", arguments=args(name="shout")))
    after = await _until_listed(stub, shout, present=False)
    assert after.catalogue_version == before.catalogue_version  # the same tools as before
    error = await rpc_error(stub.InvokeTool(pb.InvokeToolRequest(tool_name=shout)))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "TOOL_NOT_FOUND")
