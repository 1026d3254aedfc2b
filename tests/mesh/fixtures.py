"""Small servicers used to exercise the shared runtime (not the real services)."""

from __future__ import annotations

import asyncio

import grpc

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.memory.v1 import memory_service_pb2 as mem
from hivemesh.memory.v1 import memory_service_pb2_grpc as mem_grpc
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.errors import NotFound
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1 import tool_service_pb2_grpc as tool_grpc

Context = grpc.aio.ServicerContext[object, object]


class RecordingMemory(mem_grpc.MemoryServiceServicer):
    """Records the deadline each GetContext call arrived with."""

    def __init__(self) -> None:
        self.remaining: list[float | None] = []
        self.request_ids: list[str] = []

    async def GetContext(self, request: mem.GetContextRequest, context: Context) -> mem.GetContextResponse:
        self.remaining.append(context.time_remaining())
        self.request_ids.append(dict(context.invocation_metadata() or ()).get("x-request-id", ""))
        return mem.GetContextResponse()


class ForwardingTool(tool_grpc.ToolServiceServicer):
    """InvokeTool calls memory's GetContext; "slow" sleeps first; "missing" fails as NOT_FOUND;
    "boom" raises an unexpected error."""

    def __init__(self, channels: ChannelFactory) -> None:
        self._memory = mem_grpc.MemoryServiceStub(channels.channel("memory"))

    async def InvokeTool(self, request: tool.InvokeToolRequest, context: Context) -> tool.InvokeToolResponse:
        if request.tool_name == "slow":
            await asyncio.sleep(1.0)
            return tool.InvokeToolResponse(display="slow done")
        if request.tool_name == "missing":
            raise NotFound("no such tool", reason="TOOL_NOT_FOUND", metadata={"tool_name": request.tool_name})
        if request.tool_name == "boom":
            raise RuntimeError("secret internal detail")
        await self._memory.GetContext(
            mem.GetContextRequest(scope=Scope(tenant_id="t", user_id="u", session_id="s"))
        )
        return tool.InvokeToolResponse(display="forwarded")
