"""RecordStore over the memory service's structured records (PutRecord/GetRecord/DeleteRecord)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format, struct_pb2

from hivemesh.common.v1 import scope_pb2
from hivemesh.memory.v1 import memory_service_pb2 as pb
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.errors import (
    Code,
    DeadlineExceeded,
    FailedPrecondition,
    HivemeshError,
    NotFound,
    Unavailable,
)
from hivemesh.mesh.status import domain_errors
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
        request = pb.GetRecordRequest(scope=_scope(owner), kind=kind, key=key)
        try:
            with domain_errors():
                reply = await self.stub.GetRecord(request)
        except NotFound:
            return None
        except HivemeshError as exc:
            raise _translate(exc, kind, key) from None
        return StoredRecord(json_format.MessageToDict(reply.record.value), reply.record.version)

    async def put(
        self, owner: RecordOwner, kind: str, key: str, value: Mapping[str, Any], *, expected_version: int
    ) -> StoredRecord:
        request = pb.PutRecordRequest(
            scope=_scope(owner), kind=kind, key=key, value=_struct(value), expected_version=expected_version
        )
        try:
            with domain_errors():
                reply = await self.stub.PutRecord(request)
        except HivemeshError as exc:
            raise _translate(exc, kind, key) from None
        return StoredRecord(json_format.MessageToDict(reply.record.value), reply.record.version)

    async def delete(self, owner: RecordOwner, kind: str, key: str) -> bool:
        request = pb.DeleteRecordRequest(scope=_scope(owner), kind=kind, key=key)
        try:
            with domain_errors():
                reply = await self.stub.DeleteRecord(request)
        except NotFound:
            return False
        except HivemeshError as exc:
            raise _translate(exc, kind, key) from None
        return bool(reply.deleted)


def _scope(owner: RecordOwner) -> scope_pb2.Scope:
    return scope_pb2.Scope(tenant_id=owner.tenant_id, user_id=owner.user_id)


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(dict(value))
    return message


def _translate(exc: HivemeshError, kind: str, key: str) -> HivemeshError:
    """The memory service's refusal as the tool's callers should see it."""
    if exc.code in (Code.ABORTED, Code.ALREADY_EXISTS):
        return VersionConflict(kind, key)
    if exc.code == Code.FAILED_PRECONDITION:
        return FailedPrecondition(
            f"memory refused the {kind} record: {exc.message}",
            reason="MEMORY_REFUSED",
            metadata={"kind": kind},
        )
    if exc.code == Code.DEADLINE_EXCEEDED:
        return DeadlineExceeded("memory did not answer in time", reason="MEMORY_TIMEOUT")
    if exc.code == Code.UNAVAILABLE:
        return Unavailable("the memory service is unavailable", reason="MEMORY_UNAVAILABLE")
    return FailedPrecondition(
        f"memory refused the {kind} record: {exc.code.name}: {exc.message}",
        reason="MEMORY_REFUSED",
        metadata={"kind": kind, "code": exc.code.name},
    )
