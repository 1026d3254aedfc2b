"""Optimistic concurrency: of two updates naming the same version, exactly one wins."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf import struct_pb2

from hivemesh.memory.v1 import memory_service_pb2 as pb
from tests.memory.harness import MemoryUnderTest, scope


async def _outcome(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_concurrent_memory_updates_with_one_version(memory: MemoryUnderTest) -> None:
    made = await memory.stub.Remember(pb.RememberRequest(scope=scope(), text="meeting room is 4B"))
    memory_id = made.memory.memory_id
    outcomes = await asyncio.gather(
        *(
            _outcome(
                memory.stub.UpdateMemory(
                    pb.UpdateMemoryRequest(
                        scope=scope(), memory_id=memory_id, text=f"meeting room is {n}C", expected_version=1
                    )
                )
            )
            for n in range(2)
        )
    )
    assert sorted(o.name for o in outcomes) == ["ABORTED", "OK"]
    history = await memory.stub.GetMemoryHistory(
        pb.GetMemoryHistoryRequest(scope=scope(), memory_id=memory_id)
    )
    assert [c.version for c in history.changes] == [1, 2]
    hits = await memory.stub.Recall(pb.RecallRequest(scope=scope(), text="meeting room"))
    assert hits.hits[0].memory.text == history.changes[-1].text


async def test_concurrent_record_puts_with_one_version(memory: MemoryUnderTest) -> None:
    value = struct_pb2.Struct()
    value.update({"items": []})
    await memory.stub.PutRecord(pb.PutRecordRequest(scope=scope(), kind="list", key="todo", value=value))
    outcomes = await asyncio.gather(
        *(
            _outcome(
                memory.stub.PutRecord(
                    pb.PutRecordRequest(
                        scope=scope(), kind="list", key="todo", value=value, expected_version=1
                    )
                )
            )
            for _ in range(2)
        )
    )
    assert sorted(o.name for o in outcomes) == ["ABORTED", "OK"]
    got = await memory.stub.GetRecord(pb.GetRecordRequest(scope=scope(), kind="list", key="todo"))
    assert got.record.version == 2


async def test_concurrent_remembers_with_one_request_id_make_one_memory(memory: MemoryUnderTest) -> None:
    request = pb.RememberRequest(scope=scope(), text="the spare key is under the mat", request_id="once")
    outcomes = await asyncio.gather(*(_outcome(memory.stub.Remember(request)) for _ in range(3)))
    # A loser is told to retry (ABORTED is retryable); its retry finds the winner's memory.
    assert set(outcomes) <= {grpc.StatusCode.OK, grpc.StatusCode.ABORTED}
    assert grpc.StatusCode.OK in outcomes
    retried = await memory.stub.Remember(request)
    hits = await memory.stub.Recall(pb.RecallRequest(scope=scope(), text="spare key mat", top_k=10))
    assert [h.memory.memory_id for h in hits.hits] == [retried.memory.memory_id]
    history = await memory.stub.GetMemoryHistory(
        pb.GetMemoryHistoryRequest(scope=scope(), memory_id=retried.memory.memory_id)
    )
    assert [c.action for c in history.changes] == ["REMEMBERED"]
