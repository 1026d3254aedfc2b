"""RecordStore over the memory service's structured records (PutRecord/GetRecord/DeleteRecord)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format, struct_pb2

from hivemesh.common.v1 import scope_pb2
from hivemesh.memory.v1 import memory_service_pb2 as pb
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.errors import DeadlineExceeded, FailedPrecondition, HivemeshError, Unavailable
from hivemesh.tool.ports import RecordOwner, StoredRecord, VersionConflict

if TYPE_CHECKING:
    from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceAsyncStub


class MemoryRecords:
    """Opens its channel on first use: the memory service may start after this one."""

    def __init__(self, channel: Callable[[], grpc.aio.Channel]) -> None:
        self._channel = channel
        self._stub: MemoryServiceAsyncStub | None = None

    @property
    def stub(self) -> MemoryServiceAsyncStub:
        if self._stub is None:
            self._stub = MemoryServiceStub(self._channel())
        return self._stub

    async def get(self, owner: RecordOwner, kind: str, key: str) -> StoredRecord | None:
        try:
            reply = await self.stub.GetRecord(pb.GetRecordRequest(scope=_scope(owner), kind=kind, key=key))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise _translate(exc, kind, key) from None
        return StoredRecord(json_format.MessageToDict(reply.record.value), reply.record.version)

    async def put(
        self, owner: RecordOwner, kind: str, key: str, value: Mapping[str, Any], *, expected_version: int
    ) -> StoredRecord:
        request = pb.PutRecordRequest(
            scope=_scope(owner), kind=kind, key=key, value=_struct(value), expected_version=expected_version
        )
        try:
            reply = await self.stub.PutRecord(request)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, kind, key) from None
        return StoredRecord(json_format.MessageToDict(reply.record.value), reply.record.version)

    async def delete(self, owner: RecordOwner, kind: str, key: str) -> bool:
        try:
            reply = await self.stub.DeleteRecord(
                pb.DeleteRecordRequest(scope=_scope(owner), kind=kind, key=key)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise _translate(exc, kind, key) from None
        return bool(reply.deleted)


def _scope(owner: RecordOwner) -> scope_pb2.Scope:
    return scope_pb2.Scope(tenant_id=owner.tenant_id, user_id=owner.user_id)


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(dict(value))
    return message


def _translate(exc: grpc.aio.AioRpcError, kind: str, key: str) -> HivemeshError:
    code = exc.code()
    if code in (grpc.StatusCode.ABORTED, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION):
        return (
            VersionConflict(kind, key)
            if code != grpc.StatusCode.FAILED_PRECONDITION
            else FailedPrecondition(
                f"memory refused the {kind} record: {exc.details()}",
                reason="MEMORY_REFUSED",
                metadata={"kind": kind},
            )
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded("memory did not answer in time", reason="MEMORY_TIMEOUT")
    if code == grpc.StatusCode.UNAVAILABLE:
        return Unavailable("the memory service is unavailable", reason="MEMORY_UNAVAILABLE")
    return FailedPrecondition(
        f"memory refused the {kind} record: {code.name}: {exc.details()}",
        reason="MEMORY_REFUSED",
        metadata={"kind": kind, "code": code.name},
    )
