"""ToolService over gRPC: each method converts, calls the registry or the executor, converts back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from hivemesh.tool import convert
from hivemesh.tool.executor import Executor
from hivemesh.tool.registry import Registry
from hivemesh.tool.streaming import invoke_streaming
from hivemesh.tool.v1 import tool_service_pb2 as pb
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceServicer

Context = grpc.aio.ServicerContext[Any, Any]


class ToolServicer(ToolServiceServicer):
    def __init__(self, registry: Registry, executor: Executor) -> None:
        self._registry = registry
        self._executor = executor

    async def ListTools(self, request: pb.ListToolsRequest, context: Context) -> pb.ListToolsResponse:
        page = self._registry.page(request.page_size, request.page_token)
        return pb.ListToolsResponse(
            tools=[convert.spec(s) for s in page.specs], next_page_token=page.next_page_token
        )

    async def InvokeTool(self, request: pb.InvokeToolRequest, context: Context) -> pb.InvokeToolResponse:
        return convert.response(await self._executor.invoke(convert.call(request)))

    async def InvokeToolStream(
        self, request: pb.InvokeToolStreamRequest, context: Context
    ) -> AsyncIterator[pb.InvokeToolStreamResponse]:
        async for piece in invoke_streaming(self._executor, convert.call(request)):
            yield convert.stream_piece(piece)
