"""Conversions between the contract's messages and the domain's value types."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.json_format import MessageToDict

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.memory.model import Context, Hit, Memory, MemoryChange, Query, Record, Turn
from hivemesh.memory.usage import LayerUsage, Usage
from hivemesh.memory.v1 import memory_service_pb2 as pb
from hivemesh.mesh import inputs


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    whole = int(seconds // 1)
    return timestamp_pb2.Timestamp(seconds=whole, nanos=round((seconds - whole) * 1e9) % 1_000_000_000)


def seconds_of(value: timestamp_pb2.Timestamp) -> float:
    return value.seconds + value.nanos / 1e9


def ttl_of(has_ttl: bool, ttl: duration_pb2.Duration) -> float | None:
    return inputs.ttl_seconds(ttl, "ttl") if has_ttl else None


def turns_in(messages: Iterable[pb.Turn]) -> list[Turn]:
    return [turn_in(message, f"turns[{index}]") for index, message in enumerate(messages)]


def turn_in(message: pb.Turn, field: str) -> Turn:
    return Turn(
        role=int(message.role),
        text=message.text,
        time=inputs.timestamp_seconds(message.time, f"{field}.time") if message.HasField("time") else 0.0,
        task_id=message.task_id,
    )


def turn_out(turn: Turn) -> pb.Turn:
    return pb.Turn(role=turn.role, text=turn.text, time=timestamp(turn.time), task_id=turn.task_id)  # type: ignore[arg-type]  # role is a validated Role number


def context_out(context: Context) -> pb.GetContextResponse:
    return pb.GetContextResponse(
        turns=[turn_out(t) for t in context.turns],
        truncated=context.truncated,
        token_count=context.token_count,
    )


def memory_out(memory: Memory) -> pb.Memory:
    message = pb.Memory(
        memory_id=memory.memory_id,
        scope=Scope(
            tenant_id=memory.owner.tenant_id, user_id=memory.owner.user_id, session_id=memory.session_id
        ),
        text=memory.text,
        metadata=dict(memory.metadata),
        version=memory.version,
        create_time=timestamp(memory.create_time),
        update_time=timestamp(memory.update_time),
    )
    if memory.expire_time is not None:
        message.expire_time.CopyFrom(timestamp(memory.expire_time))
    return message


def query_in(request: pb.RecallRequest) -> Query:
    which = request.WhichOneof("query")
    return Query(
        text=request.text if which == "text" else None,
        vector=tuple(request.vector.values) if which == "vector" else None,
        top_k=request.top_k,
        filters=dict(request.filters),
        min_score=request.min_score,
    )


def hits_out(hits: list[Hit]) -> pb.RecallResponse:
    return pb.RecallResponse(hits=[pb.MemoryHit(memory=memory_out(h.memory), score=h.score) for h in hits])


def history_out(changes: list[MemoryChange]) -> pb.GetMemoryHistoryResponse:
    return pb.GetMemoryHistoryResponse(
        changes=[
            pb.MemoryChange(version=c.version, action=c.action.value, text=c.text, time=timestamp(c.time))
            for c in changes
        ]
    )


def value_in(value: struct_pb2.Struct) -> dict[str, object]:
    inputs.require_finite(value, "value")
    return MessageToDict(value)


def record_out(record: Record) -> pb.Record:
    value = struct_pb2.Struct()
    value.update(dict(record.value))
    message = pb.Record(
        scope=Scope(tenant_id=record.owner.tenant_id, user_id=record.owner.user_id),
        kind=record.kind,
        key=record.key,
        value=value,
        version=record.version,
        update_time=timestamp(record.update_time),
    )
    if record.expire_time is not None:
        message.expire_time.CopyFrom(timestamp(record.expire_time))
    return message


def _layer_out(layer: LayerUsage) -> pb.MemoryLayerUsage:
    return pb.MemoryLayerUsage(store=layer.store, items=layer.items)


def usage_out(usage: Usage) -> pb.MemoryUsage:
    return pb.MemoryUsage(
        short_term=_layer_out(usage.short_term),
        sessions=usage.sessions,
        long_term=_layer_out(usage.long_term),
        structured=_layer_out(usage.structured),
    )
