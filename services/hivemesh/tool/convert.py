"""Protobuf <-> domain conversions for the servicer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import duration_pb2, struct_pb2

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
        arguments=_plain(request.arguments),
        idempotency_key=request.idempotency_key,
        owner=owner(request.scope),
        task_id=request.task_id,
    )


def _plain(message: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as JSON values. Unlike ``json_format``, which fails on them (and the failure would
    be an INTERNAL error), NaN and the infinities come through as floats, for the argument check to
    refuse by name."""
    return {key: _value(item) for key, item in message.fields.items()}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        # A Struct carries every number as a double; whole numbers become ints again (2.0 -> 2), so
        # schemas, tools and error messages see the numbers the caller wrote.
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _plain(value.struct_value)
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    return None


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
