"""Our messages in the OpenAI chat completions wire format, and streamed tool calls back.

Pure data mapping, no I/O: tested without a server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from google.protobuf import json_format, struct_pb2

from hivemesh.common.v1 import content_pb2
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.mesh.errors import Unavailable

ROLES: Final = {
    content_pb2.ROLE_SYSTEM: "system",
    content_pb2.ROLE_USER: "user",
    content_pb2.ROLE_ASSISTANT: "assistant",
    content_pb2.ROLE_TOOL: "tool",
}
FINISH_REASONS: Final = {
    "stop": pb.FINISH_REASON_STOP,
    "eos": pb.FINISH_REASON_STOP,
    "end_turn": pb.FINISH_REASON_STOP,
    "length": pb.FINISH_REASON_LENGTH,
    "max_tokens": pb.FINISH_REASON_LENGTH,
    "tool_calls": pb.FINISH_REASON_TOOL_CALLS,
    "function_call": pb.FINISH_REASON_TOOL_CALLS,
    "content_filter": pb.FINISH_REASON_CONTENT_FILTER,
}
_EMPTY_SCHEMA: Final = {"type": "object", "properties": {}}


def _message(message: pb.ChatMessage) -> dict[str, Any]:
    role = ROLES.get(message.role, "user")
    wire: dict[str, Any] = {"role": role, "content": message.content}
    if role == "assistant" and message.tool_calls:
        # Servers expect null content next to tool calls when the assistant said nothing.
        wire["content"] = message.content or None
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": json.dumps(json_format.MessageToDict(call.arguments)),
                },
            }
            for call in message.tool_calls
        ]
    if role == "tool":
        wire["tool_call_id"] = message.tool_call_id
        if message.name:
            wire["name"] = message.name
    return wire


def _tool(spec: pb.FunctionSpec) -> dict[str, Any]:
    parameters = json_format.MessageToDict(spec.parameters) if spec.HasField("parameters") else _EMPTY_SCHEMA
    function: dict[str, Any] = {"name": spec.name, "parameters": parameters or _EMPTY_SCHEMA}
    if spec.description:
        function["description"] = spec.description
    return {"type": "function", "function": function}


def request_body(request: pb.GenerateRequest, default_model: str | None) -> dict[str, Any]:
    """The JSON body of a streaming ``POST /chat/completions`` for ``request``."""
    body: dict[str, Any] = {
        "messages": [_message(m) for m in request.messages],
        "stream": True,
        # Usage arrives in a last chunk only when asked for.
        "stream_options": {"include_usage": True},
    }
    model = request.options.model or default_model
    if model:
        body["model"] = model
    if request.tools:
        body["tools"] = [_tool(t) for t in request.tools]
    if request.HasField("options"):
        if request.options.max_tokens:
            body["max_tokens"] = request.options.max_tokens
        body["temperature"] = round(float(request.options.temperature), 4)
    return body


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class ToolCallAssembler:
    """Joins ``tool_calls`` deltas (keyed by ``index``) into complete calls.

    Mutable on purpose: one instance lives for one stream.
    """

    _calls: dict[int, _PartialCall] = field(default_factory=dict)

    def add(self, deltas: list[dict[str, Any]]) -> None:
        for position, delta in enumerate(deltas):
            index = delta.get("index", position)
            call = self._calls.setdefault(int(index), _PartialCall())
            if delta.get("id"):
                call.id = str(delta["id"])
            function = delta.get("function") or {}
            if function.get("name"):
                # Names arrive whole in practice, but some servers repeat or split them.
                name = str(function["name"])
                call.name = name if not call.name or call.name == name else call.name + name
            if function.get("arguments"):
                call.arguments.append(str(function["arguments"]))

    def __bool__(self) -> bool:
        return bool(self._calls)

    def complete(self) -> list[pb.ToolCall]:
        """The calls in index order; raises Unavailable if the model's arguments are not a JSON object."""
        calls: list[pb.ToolCall] = []
        for index in sorted(self._calls):
            partial = self._calls[index]
            raw = "".join(partial.arguments).strip() or "{}"
            try:
                arguments = json.loads(raw)
            except json.JSONDecodeError:
                arguments = None
            if not isinstance(arguments, dict) or not partial.name:
                raise Unavailable(
                    f"the model produced an invalid call of tool {partial.name or '?'!r}: {raw[:200]}",
                    reason="LLM_INVALID_TOOL_CALL",
                    metadata={"tool": partial.name},
                )
            struct = struct_pb2.Struct()
            struct.update(arguments)
            calls.append(pb.ToolCall(id=partial.id or f"call_{index}", name=partial.name, arguments=struct))
        return calls
