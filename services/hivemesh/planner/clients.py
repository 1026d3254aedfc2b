"""gRPC adapters for the planner's ports. Each call holds a slot of its service's bulkhead, and a
downstream failure becomes a domain error that keeps the status code and ErrorInfo reason, so the
runner can tell retryable failures from final ones."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
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
from hivemesh.planner.bulkhead import Bulkhead
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub


@contextlib.contextmanager
def _domain_errors() -> Iterator[None]:
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc) from exc


class GrpcLanguage:
    def __init__(self, channels: ChannelFactory, bulkhead: Bulkhead) -> None:
        self._stub = LanguageServiceStub(channels.channel("language"))
        self._bulkhead = bulkhead

    async def understand(
        self, text: str, context: Sequence[str], tools: Sequence[str]
    ) -> lang.UnderstandResponse:
        request = lang.UnderstandRequest(text=text, context=list(context)[-64:], available_tools=list(tools))
        async with self._bulkhead.slot():
            with _domain_errors():
                response: lang.UnderstandResponse = await self._stub.Understand(request)
        return response

    async def generate(self, request: lang.GenerateRequest) -> AsyncIterator[lang.GenerateResponse]:
        async with self._bulkhead.slot():
            with _domain_errors():
                async for chunk in self._stub.Generate(request):
                    yield chunk


class GrpcMemory:
    def __init__(self, channels: ChannelFactory, bulkhead: Bulkhead) -> None:
        self._stub = MemoryServiceStub(channels.channel("memory"))
        self._bulkhead = bulkhead

    async def get_context(self, scope: Scope) -> list[mem.Turn]:
        async with self._bulkhead.slot():
            with _domain_errors():
                response: mem.GetContextResponse = await self._stub.GetContext(
                    mem.GetContextRequest(scope=scope)
                )
        return list(response.turns)

    async def append_turns(self, scope: Scope, turns: Sequence[mem.Turn], request_id: str) -> None:
        request = mem.AppendTurnsRequest(scope=scope, turns=list(turns), request_id=request_id)
        async with self._bulkhead.slot():
            with _domain_errors():
                await self._stub.AppendTurns(request)

    async def remember(self, scope: Scope, text: str, request_id: str) -> str:
        request = mem.RememberRequest(scope=scope, text=text, request_id=request_id)
        async with self._bulkhead.slot():
            with _domain_errors():
                response: mem.RememberResponse = await self._stub.Remember(request)
        return str(response.memory.memory_id)

    async def recall(self, scope: Scope, text: str, top_k: int) -> list[mem.MemoryHit]:
        async with self._bulkhead.slot():
            with _domain_errors():
                response: mem.RecallResponse = await self._stub.Recall(
                    mem.RecallRequest(scope=scope, text=text, top_k=top_k)
                )
        return list(response.hits)


class GrpcTools:
    def __init__(self, channels: ChannelFactory, bulkhead: Bulkhead) -> None:
        self._stub = ToolServiceStub(channels.channel("tool"))
        self._bulkhead = bulkhead

    async def list_tools(self) -> list[tool.ToolSpec]:
        specs: list[tool.ToolSpec] = []
        token = ""
        while True:
            async with self._bulkhead.slot():
                with _domain_errors():
                    page: tool.ListToolsResponse = await self._stub.ListTools(
                        tool.ListToolsRequest(page_size=1000, page_token=token)
                    )
            specs.extend(page.tools)
            token = page.next_page_token
            if not token:
                return specs

    async def invoke(
        self, name: str, arguments: dict[str, Any], *, idempotency_key: str, scope: Scope, task_id: str
    ) -> tool.InvokeToolResponse:
        args = struct_pb2.Struct()
        json_format.ParseDict(arguments, args)
        request = tool.InvokeToolRequest(
            tool_name=name, arguments=args, idempotency_key=idempotency_key, scope=scope, task_id=task_id
        )
        async with self._bulkhead.slot():
            with _domain_errors():
                response: tool.InvokeToolResponse = await self._stub.InvokeTool(request)
        return response
