"""Every RPC of the memory service, on both adapter sets, including the errors callers can cause."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, struct_pb2
from google.protobuf.json_format import MessageToDict

from hivemesh.common.v1.content_pb2 import ROLE_ASSISTANT, ROLE_USER
from hivemesh.memory.v1 import memory_service_pb2 as pb
from tests.memory.harness import MemoryUnderTest, scope
from tests.support import rpc_error


def struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


async def test_turns_come_back_oldest_first_within_the_budget(memory: MemoryUnderTest) -> None:
    turns = [
        pb.Turn(role=ROLE_USER if i % 2 == 0 else ROLE_ASSISTANT, text=f"turn {i} " + "x" * 36)
        for i in range(6)
    ]
    appended = await memory.stub.AppendTurns(pb.AppendTurnsRequest(scope=scope(), turns=turns))
    assert appended.turn_count == 6

    everything = await memory.stub.GetContext(pb.GetContextRequest(scope=scope()))
    assert [t.text[:6] for t in everything.turns] == [f"turn {i}" for i in range(6)]
    assert not everything.truncated
    assert everything.token_count == 6 * (11 + 4)

    # Two turns cost 30 tokens: a budget of 40 keeps only the two most recent.
    tight = await memory.stub.GetContext(pb.GetContextRequest(scope=scope(), max_tokens=40))
    assert [t.text[:6] for t in tight.turns] == ["turn 4", "turn 5"]
    assert tight.truncated
    assert tight.turns[1].role == ROLE_ASSISTANT


async def test_append_with_a_repeated_request_id_adds_nothing(memory: MemoryUnderTest) -> None:
    request = pb.AppendTurnsRequest(
        scope=scope(), turns=[pb.Turn(role=ROLE_USER, text="hi")], request_id="r-1"
    )
    assert (await memory.stub.AppendTurns(request)).turn_count == 1
    assert (await memory.stub.AppendTurns(request)).turn_count == 1


async def test_sessions_are_separate(memory: MemoryUnderTest) -> None:
    await memory.stub.AppendTurns(
        pb.AppendTurnsRequest(scope=scope(), turns=[pb.Turn(role=ROLE_USER, text="a")])
    )
    other = await memory.stub.GetContext(pb.GetContextRequest(scope=scope(session="s2")))
    assert list(other.turns) == []


async def test_context_needs_a_session(memory: MemoryUnderTest) -> None:
    status = await rpc_error(memory.stub.GetContext(pb.GetContextRequest(scope=scope(session=""))))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.metadata["field"] == "scope.session_id"


async def test_remember_then_recall_from_another_session(memory: MemoryUnderTest) -> None:
    fact = await memory.stub.Remember(
        pb.RememberRequest(scope=scope(session="monday"), text="Remember that my sister's name is Ana")
    )
    await memory.stub.Remember(pb.RememberRequest(scope=scope(), text="I prefer window seats on flights"))
    await memory.stub.Remember(pb.RememberRequest(scope=scope(), text="My brother's name is Bob"))
    found = await memory.stub.Recall(
        pb.RecallRequest(scope=scope(session="friday"), text="what's my sister's name?", top_k=1)
    )
    assert [h.memory.memory_id for h in found.hits] == [fact.memory.memory_id]
    assert 0.0 < found.hits[0].score <= 1.0
    assert found.hits[0].memory.scope.session_id == "monday"


async def test_near_duplicates_merge_but_different_facts_do_not(memory: MemoryUnderTest) -> None:
    first = await memory.stub.Remember(pb.RememberRequest(scope=scope(), text="My sister's name is Ana"))
    again = await memory.stub.Remember(pb.RememberRequest(scope=scope(), text="my sister's name is Ana."))
    assert again.merged
    assert again.memory.memory_id == first.memory.memory_id
    assert again.memory.version == 2
    other = await memory.stub.Remember(pb.RememberRequest(scope=scope(), text="My brother's name is Ana"))
    assert not other.merged
    assert other.memory.memory_id != first.memory.memory_id


async def test_remember_with_a_repeated_request_id_returns_the_same_memory(memory: MemoryUnderTest) -> None:
    request = pb.RememberRequest(scope=scope(), text="I live in Lisbon", request_id="req-7")
    first = await memory.stub.Remember(request)
    second = await memory.stub.Remember(request)
    assert second.memory.memory_id == first.memory.memory_id
    assert second.memory.version == 1


async def test_recall_filters_by_metadata_and_min_score(memory: MemoryUnderTest) -> None:
    await memory.stub.Remember(
        pb.RememberRequest(scope=scope(), text="dentist on tuesday", metadata={"topic": "health"})
    )
    work = await memory.stub.Remember(
        pb.RememberRequest(scope=scope(), text="standup on tuesday", metadata={"topic": "work", "a.b": "c"})
    )
    only_work = await memory.stub.Recall(
        pb.RecallRequest(scope=scope(), text="tuesday", filters={"topic": "work", "a.b": "c"})
    )
    assert [h.memory.memory_id for h in only_work.hits] == [work.memory.memory_id]
    assert dict(only_work.hits[0].memory.metadata) == {"topic": "work", "a.b": "c"}
    none = await memory.stub.Recall(
        pb.RecallRequest(scope=scope(), text="completely unrelated words", min_score=0.9)
    )
    assert list(none.hits) == []


async def test_recall_by_vector_and_a_wrong_length(memory: MemoryUnderTest) -> None:
    await memory.stub.Remember(pb.RememberRequest(scope=scope(), text="the wifi password is hunter2"))
    by_text = await memory.stub.Recall(pb.RecallRequest(scope=scope(), text="wifi password"))
    assert by_text.hits
    status = await rpc_error(
        memory.stub.Recall(pb.RecallRequest(scope=scope(), vector=pb.QueryVector(values=[0.1, 0.2, 0.3])))
    )
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "DIMENSION_MISMATCH"
    assert status.metadata["field"] == "vector.values"


async def test_update_with_versions_and_history(memory: MemoryUnderTest) -> None:
    made = await memory.stub.Remember(pb.RememberRequest(scope=scope(), text="my car is red"))
    memory_id = made.memory.memory_id
    updated = await memory.stub.UpdateMemory(
        pb.UpdateMemoryRequest(scope=scope(), memory_id=memory_id, text="my car is blue", expected_version=1)
    )
    assert updated.memory.version == 2
    assert updated.memory.text == "my car is blue"
    stale = await rpc_error(
        memory.stub.UpdateMemory(
            pb.UpdateMemoryRequest(
                scope=scope(), memory_id=memory_id, text="my car is green", expected_version=1
            )
        )
    )
    assert stale.code == grpc.StatusCode.ABORTED
    assert stale.reason == "VERSION_MISMATCH"
    assert stale.metadata["current_version"] == "2"
    recalled = await memory.stub.Recall(pb.RecallRequest(scope=scope(), text="car colour"))
    assert recalled.hits[0].memory.text == "my car is blue"

    forgotten = await memory.stub.Forget(pb.ForgetRequest(scope=scope(), memory_id=memory_id))
    assert forgotten.forgotten == 1
    history = await memory.stub.GetMemoryHistory(
        pb.GetMemoryHistoryRequest(scope=scope(), memory_id=memory_id)
    )
    assert [(c.version, c.action, c.text) for c in history.changes] == [
        (1, "REMEMBERED", "my car is red"),
        (2, "UPDATED", "my car is blue"),
        (3, "FORGOTTEN", ""),
    ]
    assert (await memory.stub.Recall(pb.RecallRequest(scope=scope(), text="car colour"))).hits == []
    missing = await rpc_error(
        memory.stub.UpdateMemory(
            pb.UpdateMemoryRequest(scope=scope(), memory_id=memory_id, text="x", expected_version=3)
        )
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND
    assert missing.reason == "MEMORY_NOT_FOUND"


async def test_forget_by_filter(memory: MemoryUnderTest) -> None:
    for i in range(3):
        await memory.stub.Remember(
            pb.RememberRequest(
                scope=scope(), text=f"trip fact number {i} zebra{i}", metadata={"trip": "rome"}
            )
        )
    kept = await memory.stub.Remember(pb.RememberRequest(scope=scope(), text="my cat is called Mia"))
    gone = await memory.stub.Forget(
        pb.ForgetRequest(scope=scope(), filter=pb.ForgetFilter(metadata={"trip": "rome"}))
    )
    assert gone.forgotten == 3
    left = await memory.stub.Recall(pb.RecallRequest(scope=scope(), text="trip fact cat", top_k=10))
    assert [h.memory.memory_id for h in left.hits] == [kept.memory.memory_id]


async def test_expired_memories_are_not_recalled_and_are_swept(memory: MemoryUnderTest) -> None:
    short = await memory.stub.Remember(
        pb.RememberRequest(scope=scope(), text="parking spot is B12", ttl=duration_pb2.Duration(seconds=60))
    )
    assert short.memory.HasField("expire_time")
    assert (await memory.stub.Recall(pb.RecallRequest(scope=scope(), text="parking spot"))).hits
    memory.clock.now += 61
    assert (await memory.stub.Recall(pb.RecallRequest(scope=scope(), text="parking spot"))).hits == []


async def test_records_put_get_list_delete(memory: MemoryUnderTest) -> None:
    put = await memory.stub.PutRecord(
        pb.PutRecordRequest(
            scope=scope(), kind="list", key="shopping", value=struct({"items": ["milk", "eggs"]})
        )
    )
    assert put.record.version == 1
    got = await memory.stub.GetRecord(pb.GetRecordRequest(scope=scope(), kind="list", key="shopping"))
    assert MessageToDict(got.record.value) == {"items": ["milk", "eggs"]}
    again = await memory.stub.PutRecord(
        pb.PutRecordRequest(
            scope=scope(), kind="list", key="shopping", value=struct({"items": ["milk"]}), expected_version=1
        )
    )
    assert again.record.version == 2
    stale = await rpc_error(
        memory.stub.PutRecord(
            pb.PutRecordRequest(
                scope=scope(), kind="list", key="shopping", value=struct({"items": []}), expected_version=1
            )
        )
    )
    assert stale.code == grpc.StatusCode.ABORTED
    assert stale.reason == "VERSION_MISMATCH"
    exists = await rpc_error(
        memory.stub.PutRecord(
            pb.PutRecordRequest(
                scope=scope(), kind="list", key="shopping", value=struct({"items": []}), expected_version=-1
            )
        )
    )
    assert exists.code == grpc.StatusCode.ABORTED

    for key in ("b", "c", "d"):
        await memory.stub.PutRecord(
            pb.PutRecordRequest(scope=scope(), kind="list", key=key, value=struct({"items": []}))
        )
    first = await memory.stub.ListRecords(pb.ListRecordsRequest(scope=scope(), kind="list", page_size=2))
    second = await memory.stub.ListRecords(
        pb.ListRecordsRequest(scope=scope(), kind="list", page_size=2, page_token=first.next_page_token)
    )
    assert [r.key for r in first.records] + [r.key for r in second.records] == ["b", "c", "d", "shopping"]
    assert second.next_page_token == ""

    deleted = await memory.stub.DeleteRecord(
        pb.DeleteRecordRequest(scope=scope(), kind="list", key="shopping")
    )
    assert deleted.deleted
    again_deleted = await memory.stub.DeleteRecord(
        pb.DeleteRecordRequest(scope=scope(), kind="list", key="shopping")
    )
    assert not again_deleted.deleted
    missing = await rpc_error(
        memory.stub.GetRecord(pb.GetRecordRequest(scope=scope(), kind="list", key="shopping"))
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND
    assert missing.reason == "RECORD_NOT_FOUND"


async def test_record_ttl(memory: MemoryUnderTest) -> None:
    reminder = {"text": "call mum", "due": "2026-11-25T18:00:00Z", "task_id": "t1", "kind": "reminder"}
    await memory.stub.PutRecord(
        pb.PutRecordRequest(
            scope=scope(),
            kind="reminder",
            key="r1",
            value=struct(reminder),
            ttl=duration_pb2.Duration(seconds=5),
        )
    )
    assert (
        await memory.stub.GetRecord(pb.GetRecordRequest(scope=scope(), kind="reminder", key="r1"))
    ).record.version
    memory.clock.now += 6
    status = await rpc_error(
        memory.stub.GetRecord(pb.GetRecordRequest(scope=scope(), kind="reminder", key="r1"))
    )
    assert status.code == grpc.StatusCode.NOT_FOUND
    created = await memory.stub.PutRecord(
        pb.PutRecordRequest(
            scope=scope(), kind="reminder", key="r1", value=struct(reminder), expected_version=-1
        )
    )
    assert created.record.version == 1


BAD_INPUT = [
    pytest.param("Remember", pb.RememberRequest(scope=scope(), text=""), "text", id="empty-text"),
    pytest.param("Recall", pb.RecallRequest(scope=scope(), text="x", top_k=-1), "top_k", id="negative-top-k"),
    pytest.param("Recall", pb.RecallRequest(scope=scope(), text="x", min_score=2), "min_score", id="score"),
    pytest.param("Forget", pb.ForgetRequest(scope=scope(), memory_id=""), "memory_id", id="forget-empty-id"),
    pytest.param(
        "UpdateMemory",
        pb.UpdateMemoryRequest(scope=scope(), memory_id="m", text="x", expected_version=0),
        "expected_version",
        id="update-version-0",
    ),
    pytest.param(
        "AppendTurns",
        pb.AppendTurnsRequest(scope=scope(), turns=[pb.Turn(role=ROLE_USER, text="")]),
        "turns.text",
        id="empty-turn",
    ),
    pytest.param(
        "PutRecord",
        pb.PutRecordRequest(scope=scope(), kind="recipe", key="k", value=struct({})),
        "kind",
        id="unknown-kind",
    ),
    pytest.param(
        "PutRecord",
        pb.PutRecordRequest(scope=scope(), kind="list", key="k", value=struct({"items": ["a", "b", 3]})),
        "value.items[2]",
        id="schema-path",
    ),
    pytest.param(
        "PutRecord",
        pb.PutRecordRequest(
            scope=scope(),
            kind="reminder",
            key="k",
            value=struct({"text": "t", "due": "tomorrow", "task_id": "t", "kind": "timer"}),
        ),
        "value.due",
        id="reminder-due",
    ),
    pytest.param(
        "PutRecord",
        pb.PutRecordRequest(scope=scope(), kind="profile", key="k", value=struct({"bio": "x" * 70_000})),
        "value",
        id="oversized",
    ),
    pytest.param(
        "GetRecord", pb.GetRecordRequest(scope=scope(), kind="recipe", key="k"), "kind", id="get-unknown"
    ),
    pytest.param(
        "ListRecords",
        pb.ListRecordsRequest(scope=scope(), kind="list", page_token="not-a-token"),
        "page_token",
        id="bad-token",
    ),
]


@pytest.mark.parametrize(("method", "request_message", "field"), BAD_INPUT)
async def test_bad_input_is_invalid_argument_naming_the_field(
    memory: MemoryUnderTest, method: str, request_message: object, field: str
) -> None:
    status = await rpc_error(getattr(memory.stub, method)(request_message))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in status.field_violations]


async def test_unknown_kind_has_its_reason(embedded: MemoryUnderTest) -> None:
    status = await rpc_error(
        embedded.stub.PutRecord(pb.PutRecordRequest(scope=scope(), kind="recipe", key="k", value=struct({})))
    )
    assert status.reason == "UNKNOWN_RECORD_KIND"
