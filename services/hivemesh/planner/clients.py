"""gRPC adapters for the planner's ports. Downstream failures become domain errors that keep the
status code and ErrorInfo reason, so the runner can tell retryable failures from final ones."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.language.v1 import language_service_pb2 as lang
from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceStub
from hivemesh.memory.v1 import memory_service_pb2 as mem
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.status import from_rpc_error
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub


class GrpcLanguage:
    def __init__(self, channels: ChannelFactory) -> None:
        self._stub = LanguageServiceStub(channels.channel("language"))

    async def understand(
        self, text: str, context: Sequence[str], tools: Sequence[str]
    ) -> lang.UnderstandResponse:
        try:
            response: lang.UnderstandResponse = await self._stub.Understand(
                lang.UnderstandRequest(text=text, context=list(context)[-64:], available_tools=list(tools))
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        return response

    async def generate(self, request: lang.GenerateRequest) -> AsyncIterator[lang.GenerateResponse]:
        try:
            async for chunk in self._stub.Generate(request):
                yield chunk
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc


class GrpcMemory:
    def __init__(self, channels: ChannelFactory) -> None:
        self._stub = MemoryServiceStub(channels.channel("memory"))

    async def get_context(self, scope: Scope) -> list[mem.Turn]:
        try:
            response: mem.GetContextResponse = await self._stub.GetContext(mem.GetContextRequest(scope=scope))
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        return list(response.turns)

    async def append_turns(self, scope: Scope, turns: Sequence[mem.Turn], request_id: str) -> None:
        try:
            await self._stub.AppendTurns(
                mem.AppendTurnsRequest(scope=scope, turns=list(turns), request_id=request_id)
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc

    async def remember(self, scope: Scope, text: str, request_id: str) -> str:
        try:
            response: mem.RememberResponse = await self._stub.Remember(
                mem.RememberRequest(scope=scope, text=text, request_id=request_id)
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        return str(response.memory.memory_id)

    async def recall(self, scope: Scope, text: str, top_k: int) -> list[mem.MemoryHit]:
        try:
            response: mem.RecallResponse = await self._stub.Recall(
                mem.RecallRequest(scope=scope, text=text, top_k=top_k)
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        return list(response.hits)


class GrpcTools:
    def __init__(self, channels: ChannelFactory) -> None:
        self._stub = ToolServiceStub(channels.channel("tool"))

    async def list_tools(self) -> list[tool.ToolSpec]:
        specs: list[tool.ToolSpec] = []
        token = ""
        try:
            while True:
                page: tool.ListToolsResponse = await self._stub.ListTools(
                    tool.ListToolsRequest(page_size=1000, page_token=token)
                )
                specs.extend(page.tools)
                token = page.next_page_token
                if not token:
                    return specs
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc

    async def invoke(
        self, name: str, arguments: dict[str, Any], *, idempotency_key: str, scope: Scope, task_id: str
    ) -> tool.InvokeToolResponse:
        args = struct_pb2.Struct()
        json_format.ParseDict(arguments, args)
        try:
            response: tool.InvokeToolResponse = await self._stub.InvokeTool(
                tool.InvokeToolRequest(
                    tool_name=name,
                    arguments=args,
                    idempotency_key=idempotency_key,
                    scope=scope,
                    task_id=task_id,
                )
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        return response
