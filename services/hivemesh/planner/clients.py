"""gRPC adapters for the planner's ports. Each call holds a slot of its service's bulkhead, and a
downstream failure becomes a domain error that keeps the status code and ErrorInfo reason, so the
runner can tell retryable failures from final ones."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from google.protobuf import json_format, struct_pb2

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.language.v1 import language_service_pb2 as lang
from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceStub
from hivemesh.memory.v1 import memory_service_pb2 as mem
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.bulkhead import WaitingBulkhead
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.errors import NotFound, Unavailable
from hivemesh.mesh.language_pools import LanguagePools
from hivemesh.mesh.status import domain_errors
from hivemesh.planner.catalogue import CachedCatalogue, ToolCatalogue
from hivemesh.planner.config import DEFAULT_TOOL_CATALOGUE_MAX_AGE_S
from hivemesh.planner.ports import UserContext
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub


class GrpcLanguage:
    """The language service through its one channel, or, with ``pools``, routed by the cost of
    each call over the GPU and CPU pools (hivemesh.mesh.language_pools)."""

    def __init__(
        self, channels: ChannelFactory, bulkhead: WaitingBulkhead, pools: LanguagePools | None = None
    ) -> None:
        self._stub = LanguageServiceStub(channels.channel("language")) if pools is None else None
        self._bulkhead = bulkhead
        self._pools = pools

    async def understand(
        self,
        text: str,
        context: Sequence[str],
        time_zone: str = "",
        intents: Sequence[str] = (),
    ) -> lang.UnderstandResponse:
        request = lang.UnderstandRequest(
            text=text,
            context=list(context)[-64:],
            time_zone=time_zone,
            available_intents=list(intents),
        )
        response: lang.UnderstandResponse
        async with self._bulkhead.slot():
            with domain_errors():
                if self._stub is not None:
                    response = await self._stub.Understand(request)
                else:
                    assert self._pools is not None
                    response = await self._pools.unary("Understand", lambda stub: stub.Understand(request))
        return response

    async def generate(self, request: lang.GenerateRequest) -> AsyncIterator[lang.GenerateResponse]:
        async with self._bulkhead.slot():
            with domain_errors():
                if self._stub is not None:
                    async for chunk in self._stub.Generate(request):
                        yield chunk
                else:
                    assert self._pools is not None
                    async for chunk in self._pools.stream("Generate", lambda stub: stub.Generate(request)):
                        yield chunk


class GrpcMemory:
    def __init__(self, channels: ChannelFactory, bulkhead: WaitingBulkhead) -> None:
        self._stub = MemoryServiceStub(channels.channel("memory"))
        self._bulkhead = bulkhead

    async def get_context(self, scope: Scope) -> UserContext:
        async with self._bulkhead.slot():
            with domain_errors():
                response: mem.GetContextResponse = await self._stub.GetContext(
                    mem.GetContextRequest(scope=scope)
                )
        return UserContext(list(response.turns), response.time_zone)

    async def append_turns(self, scope: Scope, turns: Sequence[mem.Turn], request_id: str) -> None:
        request = mem.AppendTurnsRequest(scope=scope, turns=list(turns), request_id=request_id)
        async with self._bulkhead.slot():
            with domain_errors():
                await self._stub.AppendTurns(request)

    async def remember(self, scope: Scope, text: str, request_id: str) -> str:
        request = mem.RememberRequest(scope=scope, text=text, request_id=request_id)
        async with self._bulkhead.slot():
            with domain_errors():
                response: mem.RememberResponse = await self._stub.Remember(request)
        return str(response.memory.memory_id)

    async def recall(self, scope: Scope, text: str, top_k: int) -> list[mem.MemoryHit]:
        async with self._bulkhead.slot():
            with domain_errors():
                response: mem.RecallResponse = await self._stub.Recall(
                    mem.RecallRequest(scope=scope, text=text, top_k=top_k)
                )
        return list(response.hits)


# Listings started again when the catalogue changed between two of their pages.
_LISTING_ATTEMPTS = 3


class GrpcTools:
    """ToolService for the planner, with a cached copy of the catalogue (see catalogue.py) that
    every tool answer keeps up to date. Share one instance between the tasks of a process."""

    def __init__(
        self,
        channels: ChannelFactory,
        bulkhead: WaitingBulkhead,
        catalogue_max_age_s: float = DEFAULT_TOOL_CATALOGUE_MAX_AGE_S,
    ) -> None:
        self._stub = ToolServiceStub(channels.channel("tool"))
        self._bulkhead = bulkhead
        self._catalogue = CachedCatalogue(self._fetch_catalogue, catalogue_max_age_s)

    async def list_tools(self) -> list[tool.ToolSpec]:
        return list((await self._catalogue.get()).specs)

    async def _fetch_catalogue(self, held: ToolCatalogue | None) -> ToolCatalogue:
        for _ in range(_LISTING_ATTEMPTS):
            first = await self._list_page("", held.version if held is not None else "")
            if first.unchanged and held is not None:
                return held
            version, specs, token = first.catalogue_version, list(first.tools), first.next_page_token
            while token:
                page = await self._list_page(token, "")
                if page.catalogue_version != version:
                    break  # pages of two catalogues: list again from the start
                specs.extend(page.tools)
                token = page.next_page_token
            if not token:
                return ToolCatalogue(version, tuple(specs))
        raise Unavailable(
            f"the tool catalogue changed during each of {_LISTING_ATTEMPTS} listings",
            reason="TOOL_CATALOGUE_UNSETTLED",
        )

    async def _list_page(self, token: str, cached_version: str) -> tool.ListToolsResponse:
        request = tool.ListToolsRequest(
            page_size=1000, page_token=token, cached_catalogue_version=cached_version
        )
        async with self._bulkhead.slot():
            with domain_errors():
                page: tool.ListToolsResponse = await self._stub.ListTools(request)
        return page

    async def invoke(
        self, name: str, arguments: dict[str, Any], *, idempotency_key: str, scope: Scope, task_id: str
    ) -> tool.InvokeToolResponse:
        args = struct_pb2.Struct()
        json_format.ParseDict(arguments, args)
        request = tool.InvokeToolRequest(
            tool_name=name, arguments=args, idempotency_key=idempotency_key, scope=scope, task_id=task_id
        )
        try:
            async with self._bulkhead.slot():
                with domain_errors():
                    response: tool.InvokeToolResponse = await self._stub.InvokeTool(request)
        except NotFound as exc:
            if exc.reason == "TOOL_NOT_FOUND":
                # Gone since the copy was made, or never there (a model's guess): the version says which.
                version = exc.metadata.get("catalogue_version", "")
                if version:
                    self._catalogue.observe(version)
                else:
                    self._catalogue.invalidate()
            raise
        self._catalogue.observe(response.catalogue_version)
        return response
