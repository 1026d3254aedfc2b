"""Protobuf <-> domain conversions for the servicer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import duration_pb2, struct_pb2

from hivemesh.common.v1 import scope_pb2
from hivemesh.mesh.structs import plain
from hivemesh.tool.model import Owner, Progress, Serves, SlotPart, ToolCall, ToolOutcome, ToolSpec
from hivemesh.tool.registry import Page
from hivemesh.tool.v1 import tool_service_pb2 as pb
from hivemesh.world import zones


def struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(dict(value))
    return message


def spec(item: ToolSpec) -> pb.ToolSpec:
    timeout = duration_pb2.Duration()
    timeout.FromNanoseconds(round(item.timeout_s * 1e9))
    return pb.ToolSpec(
        name=item.name,
        description=item.description,
        arguments_schema=struct(item.arguments_schema),
        result_schema=struct(item.result_schema),
        side_effects=item.side_effects,
        timeout=timeout,
        max_concurrency=item.max_concurrency,
        source=item.source,
        intents=[binding(serves) for serves in item.intents],
    )


_PARTS = {
    SlotPart.WHOLE: pb.SLOT_PART_UNSPECIFIED,
    SlotPart.QUANTITY_VALUE: pb.SLOT_PART_QUANTITY_VALUE,
    SlotPart.QUANTITY_UNIT: pb.SLOT_PART_QUANTITY_UNIT,
}


def binding(serves: Serves) -> pb.IntentBinding:
    return pb.IntentBinding(
        intent=serves.intent,
        arguments=[
            pb.ArgumentBinding(
                argument=name,
                slot=fill.slot,
                part=_PARTS[fill.part],
                question=fill.question,
                answer_joiner=fill.joiner,
            )
            for name, fill in serves.arguments.items()
        ],
        reply=serves.reply,
    )


def page(listed: Page) -> pb.ListToolsResponse:
    return pb.ListToolsResponse(
        tools=[spec(s) for s in listed.specs],
        next_page_token=listed.next_page_token,
        catalogue_version=listed.catalogue_version,
        unchanged=listed.unchanged,
    )


def owner(scope: scope_pb2.Scope) -> Owner:
    return Owner(scope.tenant_id, scope.user_id, scope.session_id)


def call(request: pb.InvokeToolRequest | pb.InvokeToolStreamRequest) -> ToolCall:
    zones.check(request.scope.time_zone, "scope.time_zone")
    return ToolCall(
        tool_name=request.tool_name,
        arguments=plain(request.arguments),
        idempotency_key=request.idempotency_key,
        owner=owner(request.scope),
        task_id=request.task_id,
        time_zone=request.scope.time_zone,
    )


def response(outcome: ToolOutcome, catalogue_version: str) -> pb.InvokeToolResponse:
    return pb.InvokeToolResponse(
        result=struct(outcome.output.value),
        display=outcome.output.display,
        replayed=outcome.replayed,
        catalogue_version=catalogue_version,
    )


def progress(piece: Progress) -> pb.InvokeToolStreamResponse:
    return pb.InvokeToolStreamResponse(
        progress=pb.ToolProgress(progress=piece.progress, total=piece.total, message=piece.message)
    )
