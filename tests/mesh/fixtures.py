"""Small servicers used to exercise the shared runtime (not the real services)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator

import grpc

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.memory.v1 import memory_service_pb2 as mem
from hivemesh.memory.v1 import memory_service_pb2_grpc as mem_grpc
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.errors import FailedPrecondition, NotFound
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1 import tool_service_pb2_grpc as tool_grpc

Context = grpc.aio.ServicerContext[object, object]

# Set by a caller to show that a callee sees nothing of its caller's context but the metadata.
PROBE: contextvars.ContextVar[str] = contextvars.ContextVar("probe", default="unset")


class RecordingMemory(mem_grpc.MemoryServiceServicer):
    """Records the deadline, request id and trace context each GetContext call arrived with."""

    def __init__(self) -> None:
        self.remaining: list[float | None] = []
        self.request_ids: list[str] = []
        self.traceparents: list[str] = []

    async def GetContext(self, request: mem.GetContextRequest, context: Context) -> mem.GetContextResponse:
        metadata = dict(context.invocation_metadata() or ())
        self.remaining.append(context.time_remaining())
        self.request_ids.append(str(metadata.get("x-request-id", "")))
        self.traceparents.append(str(metadata.get("traceparent", "")))
        return mem.GetContextResponse()


class ForwardingTool(tool_grpc.ToolServiceServicer):
    """InvokeTool calls memory's GetContext; "slow" sleeps first; "missing" fails as NOT_FOUND;
    "precondition" as FAILED_PRECONDITION; "boom" raises an unexpected error; "mutate" changes the
    request it got and keeps the response it returns; "probe" answers what PROBE holds; "stream"
    streams from this same service's InvokeToolStream and returns what it received.

    InvokeToolStream records its deadline and request id, then sends three progress messages and a
    result; "fail" fails as NOT_FOUND after the first message, "slow" waits after it; "endless"
    sends progress for ever without waiting for anything."""

    def __init__(self, channels: ChannelFactory) -> None:
        self._channels = channels
        self._memory = mem_grpc.MemoryServiceStub(channels.channel("memory"))
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.last_response: tool.InvokeToolResponse | None = None
        self.stream_remaining: list[float | None] = []
        self.stream_request_ids: list[str] = []

    async def InvokeTool(self, request: tool.InvokeToolRequest, context: Context) -> tool.InvokeToolResponse:
        if request.tool_name == "slow":
            await self._slowly(1.0)
            return tool.InvokeToolResponse(display="slow done")
        if request.tool_name == "missing":
            raise NotFound("no such tool", reason="TOOL_NOT_FOUND", metadata={"tool_name": request.tool_name})
        if request.tool_name == "precondition":
            raise FailedPrecondition("the list is full", reason="LIST_FULL", metadata={"limit": "3"})
        if request.tool_name == "boom":
            raise RuntimeError("secret internal detail")
        if request.tool_name == "mutate":
            request.task_id = "changed by the callee"
            self.last_response = tool.InvokeToolResponse(display="kept by the callee")
            return self.last_response
        if request.tool_name == "probe":
            return tool.InvokeToolResponse(display=PROBE.get())
        if request.tool_name == "stream":
            stub = tool_grpc.ToolServiceStub(self._channels.channel("tool"))
            pieces = [p async for p in stub.InvokeToolStream(tool.InvokeToolStreamRequest(tool_name="count"))]
            return tool.InvokeToolResponse(display=pieces[-1].result.display)
        await self._memory.GetContext(
            mem.GetContextRequest(scope=Scope(tenant_id="t", user_id="u", session_id="s"))
        )
        return tool.InvokeToolResponse(display="forwarded")

    async def InvokeToolStream(
        self, request: tool.InvokeToolStreamRequest, context: Context
    ) -> AsyncIterator[tool.InvokeToolStreamResponse]:
        self.stream_remaining.append(context.time_remaining())
        self.stream_request_ids.append(str(dict(context.invocation_metadata() or ()).get("x-request-id", "")))
        if request.tool_name == "endless":
            try:
                step = 0
                while True:
                    step += 1
                    yield tool.InvokeToolStreamResponse(progress=tool.ToolProgress(progress=step))
            finally:
                self.cancelled.set()
        for step in range(1, 4):
            yield tool.InvokeToolStreamResponse(progress=tool.ToolProgress(progress=step, total=3))
            if request.tool_name == "fail":
                raise NotFound("the tool went away", reason="TOOL_GONE", metadata={"step": str(step)})
            if request.tool_name == "slow":
                await self._slowly(30.0)
        yield tool.InvokeToolStreamResponse(result=tool.InvokeToolResponse(display="counted to 3"))

    async def _slowly(self, seconds: float) -> None:
        self.started.set()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
