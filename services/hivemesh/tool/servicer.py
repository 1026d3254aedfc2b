"""ToolService over gRPC: each method converts, calls the registry or the executor, converts back.
Every answer names the catalogue version current when it is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from hivemesh.tool import convert
from hivemesh.tool.executor import Executor
from hivemesh.tool.model import Progress
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
        page = self._registry.page(request.page_size, request.page_token, request.cached_catalogue_version)
        return convert.page(page)

    async def InvokeTool(self, request: pb.InvokeToolRequest, context: Context) -> pb.InvokeToolResponse:
        outcome = await self._executor.invoke(convert.call(request))
        return convert.response(outcome, self._registry.catalogue().version)

    async def InvokeToolStream(
        self, request: pb.InvokeToolStreamRequest, context: Context
    ) -> AsyncIterator[pb.InvokeToolStreamResponse]:
        async for piece in invoke_streaming(self._executor, convert.call(request)):
            if isinstance(piece, Progress):
                yield convert.progress(piece)
            else:
                yield pb.InvokeToolStreamResponse(
                    result=convert.response(piece, self._registry.catalogue().version)
                )
