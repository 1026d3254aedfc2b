"""Protobuf <-> domain conversions for the servicer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2

from hivemesh.common.v1 import scope_pb2
from hivemesh.tool.model import Owner, Progress, ToolCall, ToolOutcome, ToolSpec
from hivemesh.tool.registry import Page
from hivemesh.tool.v1 import tool_service_pb2 as pb


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
    return ToolCall(
        tool_name=request.tool_name,
        arguments=_whole(json_format.MessageToDict(request.arguments)),
        idempotency_key=request.idempotency_key,
        owner=owner(request.scope),
        task_id=request.task_id,
    )


def _whole(value: Any) -> Any:
    """A Struct carries every number as a double; whole numbers become ints again (2.0 -> 2), so
    schemas, tools and error messages see the numbers the caller wrote."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


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
