"""The gRPC face of the memory service: convert the request, call the domain, convert the result."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from hivemesh.memory import convert, scoping
from hivemesh.memory.knowledge import LongTermMemory
from hivemesh.memory.profile import TimeZones
from hivemesh.memory.records import StructuredRecords
from hivemesh.memory.shortterm import ShortTermMemory
from hivemesh.memory.usage import MemoryUsage
from hivemesh.memory.v1 import memory_service_pb2 as pb
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceServicer

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class MemoryServicer(MemoryServiceServicer):
    def __init__(
        self,
        short: ShortTermMemory,
        long: LongTermMemory,
        records: StructuredRecords,
        time_zones: TimeZones,
        usage: MemoryUsage,
    ) -> None:
        self._short = short
        self._long = long
        self._records = records
        self._time_zones = time_zones
        self._usage = usage

    async def AppendTurns(self, request: pb.AppendTurnsRequest, context: Context) -> pb.AppendTurnsResponse:
        s = request.scope
        session = scoping.session(s.tenant_id, s.user_id, s.session_id)
        count = await self._short.append(session, convert.turns_in(request.turns), request.request_id)
        return pb.AppendTurnsResponse(turn_count=count)

    async def GetContext(self, request: pb.GetContextRequest, context: Context) -> pb.GetContextResponse:
        s = request.scope
        session = scoping.session(s.tenant_id, s.user_id, s.session_id)
        zone = await self._time_zones.settle(scoping.owner(s.tenant_id, s.user_id), s.time_zone)
        reply = convert.context_out(await self._short.context(session, request.max_tokens))
        reply.time_zone = zone
        return reply

    async def Remember(self, request: pb.RememberRequest, context: Context) -> pb.RememberResponse:
        owner = scoping.owner(request.scope.tenant_id, request.scope.user_id)
        result = await self._long.remember(
            owner,
            request.scope.session_id,
            request.text,
            dict(request.metadata),
            convert.ttl_of(request.HasField("ttl"), request.ttl),
            request.request_id,
        )
        return pb.RememberResponse(memory=convert.memory_out(result.memory), merged=result.merged)

    async def Recall(self, request: pb.RecallRequest, context: Context) -> pb.RecallResponse:
        owner = scoping.owner(request.scope.tenant_id, request.scope.user_id)
        return convert.hits_out(await self._long.recall(owner, convert.query_in(request)))

    async def Forget(self, request: pb.ForgetRequest, context: Context) -> pb.ForgetResponse:
        owner = scoping.owner(request.scope.tenant_id, request.scope.user_id)
        by_id = request.memory_id if request.WhichOneof("target") == "memory_id" else None
        forgotten = await self._long.forget(owner, by_id, dict(request.filter.metadata))
        return pb.ForgetResponse(forgotten=forgotten)

    async def UpdateMemory(
        self, request: pb.UpdateMemoryRequest, context: Context
    ) -> pb.UpdateMemoryResponse:
        owner = scoping.owner(request.scope.tenant_id, request.scope.user_id)
        memory = await self._long.update(
            owner, request.memory_id, request.text, request.expected_version, dict(request.metadata)
        )
        return pb.UpdateMemoryResponse(memory=convert.memory_out(memory))

    async def GetMemoryHistory(
        self, request: pb.GetMemoryHistoryRequest, context: Context
    ) -> pb.GetMemoryHistoryResponse:
        owner = scoping.owner(request.scope.tenant_id, request.scope.user_id)
        return convert.history_out(await self._long.history(owner, request.memory_id))

    async def PutRecord(self, request: pb.PutRecordRequest, context: Context) -> pb.PutRecordResponse:
        owner = scoping.owner(request.scope.tenant_id, request.scope.user_id)
        record = await self._records.put(
            owner,
            request.kind,
            request.key,
            convert.value_in(request.value),
            request.expected_version,
            convert.ttl_of(request.HasField("ttl"), request.ttl),
        )
        self._time_zones.changed(owner, request.kind, request.key)
        return pb.PutRecordResponse(record=convert.record_out(record))

    async def GetRecord(self, request: pb.GetRecordRequest, context: Context) -> pb.GetRecordResponse:
        owner = scoping.owner(request.scope.tenant_id, request.scope.user_id)
        return pb.GetRecordResponse(
            record=convert.record_out(await self._records.get(owner, request.kind, request.key))
        )

    async def ListRecords(self, request: pb.ListRecordsRequest, context: Context) -> pb.ListRecordsResponse:
        owner = scoping.owner(request.scope.tenant_id, request.scope.user_id)
        page = await self._records.list(owner, request.kind, request.page_size, request.page_token)
        return pb.ListRecordsResponse(
            records=[convert.record_out(r) for r in page.records], next_page_token=page.next_page_token
        )

    async def DeleteRecord(
        self, request: pb.DeleteRecordRequest, context: Context
    ) -> pb.DeleteRecordResponse:
        owner = scoping.owner(request.scope.tenant_id, request.scope.user_id)
        deleted = await self._records.delete(owner, request.kind, request.key)
        self._time_zones.changed(owner, request.kind, request.key)
        return pb.DeleteRecordResponse(deleted=deleted)

    async def CountMemory(self, request: pb.CountMemoryRequest, context: Context) -> pb.CountMemoryResponse:
        s = request.scope
        usage = await self._usage.count(scoping.counted(s.tenant_id, s.session_id), s.user_id)
        return pb.CountMemoryResponse(usage=convert.usage_out(usage))
