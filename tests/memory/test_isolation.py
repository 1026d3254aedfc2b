"""Tenant B tries every RPC with tenant A's ids, keys and filters, and finds nothing."""

from __future__ import annotations

import grpc
from google.protobuf import struct_pb2

from hivemesh.common.v1.content_pb2 import ROLE_USER
from hivemesh.memory.v1 import memory_service_pb2 as pb
from tests.memory.harness import MemoryUnderTest, scope
from tests.support import rpc_error

A = scope(tenant="tenant-a", user="ana", session="s1")
# Same user and session ids in another tenant: only the tenant differs.
B = scope(tenant="tenant-b", user="ana", session="s1")


async def test_another_tenant_sees_and_changes_nothing(memory: MemoryUnderTest) -> None:
    stub = memory.stub
    secret = await stub.Remember(
        pb.RememberRequest(scope=A, text="my bank pin is 4321", metadata={"kind": "secret"})
    )
    memory_id = secret.memory.memory_id
    await stub.AppendTurns(
        pb.AppendTurnsRequest(scope=A, turns=[pb.Turn(role=ROLE_USER, text="private turn")])
    )
    value = struct_pb2.Struct()
    value.update({"items": ["a"]})
    await stub.PutRecord(pb.PutRecordRequest(scope=A, kind="list", key="todo", value=value))

    assert (await stub.GetContext(pb.GetContextRequest(scope=B))).turns == []
    recall_text = await stub.Recall(pb.RecallRequest(scope=B, text="bank pin", top_k=100))
    recall_filter = await stub.Recall(pb.RecallRequest(scope=B, text="pin", filters={"kind": "secret"}))
    vector = [1.0] + [0.0] * 255
    recall_vector = await stub.Recall(
        pb.RecallRequest(scope=B, vector=pb.QueryVector(values=vector), top_k=100)
    )
    assert recall_text.hits == recall_filter.hits == recall_vector.hits == []

    assert (await stub.Forget(pb.ForgetRequest(scope=B, memory_id=memory_id))).forgotten == 0
    everything = pb.ForgetFilter(metadata={})
    assert (await stub.Forget(pb.ForgetRequest(scope=B, filter=everything))).forgotten == 0
    update = await rpc_error(
        stub.UpdateMemory(
            pb.UpdateMemoryRequest(scope=B, memory_id=memory_id, text="hacked", expected_version=1)
        )
    )
    assert update.code == grpc.StatusCode.NOT_FOUND
    history = await rpc_error(stub.GetMemoryHistory(pb.GetMemoryHistoryRequest(scope=B, memory_id=memory_id)))
    assert history.code == grpc.StatusCode.NOT_FOUND

    get = await rpc_error(stub.GetRecord(pb.GetRecordRequest(scope=B, kind="list", key="todo")))
    assert get.code == grpc.StatusCode.NOT_FOUND
    assert (await stub.ListRecords(pb.ListRecordsRequest(scope=B, kind="list"))).records == []
    assert not (await stub.DeleteRecord(pb.DeleteRecordRequest(scope=B, kind="list", key="todo"))).deleted
    # A create in B with A's key makes B's own record and leaves A's alone.
    mine = await stub.PutRecord(
        pb.PutRecordRequest(scope=B, kind="list", key="todo", value=value, expected_version=-1)
    )
    assert mine.record.version == 1
    # A remember in B with A's exact text is a new memory of B's, not a merge into A's.
    copy = await stub.Remember(pb.RememberRequest(scope=B, text="my bank pin is 4321"))
    assert not copy.merged
    assert copy.memory.memory_id != memory_id

    # Tenant A still has everything, unchanged.
    a_hits = await stub.Recall(pb.RecallRequest(scope=A, text="bank pin", top_k=100))
    assert [(h.memory.memory_id, h.memory.version) for h in a_hits.hits] == [(memory_id, 1)]
    assert len((await stub.GetContext(pb.GetContextRequest(scope=A))).turns) == 1
    assert (await stub.GetRecord(pb.GetRecordRequest(scope=A, kind="list", key="todo"))).record.version == 1


async def test_another_user_of_the_same_tenant_sees_nothing(memory: MemoryUnderTest) -> None:
    made = await memory.stub.Remember(pb.RememberRequest(scope=A, text="allergic to peanuts"))
    other = scope(tenant="tenant-a", user="bob", session="s1")
    assert (await memory.stub.Recall(pb.RecallRequest(scope=other, text="allergic peanuts"))).hits == []
    status = await rpc_error(
        memory.stub.GetMemoryHistory(pb.GetMemoryHistoryRequest(scope=other, memory_id=made.memory.memory_id))
    )
    assert status.code == grpc.StatusCode.NOT_FOUND
