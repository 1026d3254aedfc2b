from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.protobuf import struct_pb2

from hivemesh.common.v1 import content_pb2
from hivemesh.language.generate import (
    BuiltinBackend,
    GenerateBackend,
    LLMConfig,
    OpenAICompatibleBackend,
    build_backend,
)
from hivemesh.language.generate.openai_compat import retry_after_seconds
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.mesh import replies
from hivemesh.mesh.config import ConfigError
from hivemesh.mesh.errors import (
    Code,
    FailedPrecondition,
    HivemeshError,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)

USER = content_pb2.ROLE_USER
ASSISTANT = content_pb2.ROLE_ASSISTANT
TOOL = content_pb2.ROLE_TOOL
SYSTEM = content_pb2.ROLE_SYSTEM


def request(*messages: pb.ChatMessage, intent: str = "", **kwargs: Any) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        messages=list(messages), understanding=pb.UnderstandResponse(intent=intent), **kwargs
    )


async def collect(backend: GenerateBackend, req: pb.GenerateRequest) -> list[pb.GenerateResponse]:
    return [r async for r in backend.generate(req)]


def text_of(responses: list[pb.GenerateResponse]) -> str:
    return "".join(r.text_delta for r in responses if r.WhichOneof("kind") == "text_delta")


# --- built-in backend -------------------------------------------------------------------------


async def test_builtin_single_tool_result_is_exactly_the_display_text() -> None:
    req = request(
        pb.ChatMessage(role=USER, content="what is 12 * (3 + 4)?"),
        pb.ChatMessage(role=ASSISTANT, tool_calls=[pb.ToolCall(id="c1", name="calculator")]),
        pb.ChatMessage(role=TOOL, content="84", name="calculator", tool_call_id="c1"),
        intent="calculator",
    )
    out = await collect(BuiltinBackend(), req)
    assert text_of(out) == "84"
    assert [r.WhichOneof("kind") for r in out] == ["text_delta", "usage", "finish_reason"]
    assert out[-1].finish_reason == pb.FINISH_REASON_STOP
    assert out[-2].usage.completion_tokens == 1
    assert out[-2].usage.prompt_tokens > 0


async def test_builtin_several_results_one_per_line_and_streamed_in_words() -> None:
    req = request(
        pb.ChatMessage(role=USER, content="5 miles in km and time in Tokyo"),
        pb.ChatMessage(role=TOOL, content="8.04672 kilometers", name="convert_units"),
        pb.ChatMessage(role=TOOL, content="22:30 on Wednesday (Asia/Tokyo)", name="current_time"),
    )
    out = await collect(BuiltinBackend(), req)
    assert text_of(out) == "8.04672 kilometers\n22:30 on Wednesday (Asia/Tokyo)"
    assert sum(1 for r in out if r.WhichOneof("kind") == "text_delta") > 2


async def test_builtin_ignores_tool_results_of_earlier_turns() -> None:
    req = request(
        pb.ChatMessage(role=USER, content="what is 2 + 2"),
        pb.ChatMessage(role=TOOL, content="4", name="calculator"),
        pb.ChatMessage(role=USER, content="hello"),
        intent="greeting",
    )
    assert text_of(await collect(BuiltinBackend(), req)) == "Hello! How can I help you?"


async def test_builtin_streams_the_planners_direct_reply_as_is() -> None:
    req = request(
        pb.ChatMessage(role=USER, content="remember my sister is Ana"),
        pb.ChatMessage(role=ASSISTANT, content="Noted: your sister is Ana."),
        intent="remember",
    )
    assert text_of(await collect(BuiltinBackend(), req)) == "Noted: your sister is Ana."


async def test_builtin_out_of_scope_and_not_installed_replies_are_honest() -> None:
    oos = await collect(BuiltinBackend(), request(pb.ChatMessage(role=USER, content="who won"), intent="oos"))
    assert text_of(oos) == "Sorry, that's outside what I can help with. " + replies.CAPABILITIES
    assert text_of(oos) == replies.OUT_OF_SCOPE  # the planner's words
    weather = await collect(
        BuiltinBackend(), request(pb.ChatMessage(role=USER, content="rain?"), intent="weather")
    )
    assert "weather" in text_of(weather)
    assert "no tool" in text_of(weather)


# --- configuration ----------------------------------------------------------------------------


async def test_build_backend_chooses_by_environment() -> None:
    assert isinstance(build_backend({}), BuiltinBackend)
    assert isinstance(
        build_backend({"HIVEMESH_LLM_BACKEND": "builtin", "HIVEMESH_LLM_BASE_URL": "http://x"}),
        BuiltinBackend,
    )
    backend = build_backend({"HIVEMESH_LLM_BASE_URL": "http://127.0.0.1:1/v1", "HIVEMESH_LLM_MODEL": "m"})
    assert isinstance(backend, OpenAICompatibleBackend)
    await backend.aclose()
    with pytest.raises(ConfigError, match="HIVEMESH_LLM_BASE_URL"):
        build_backend({"HIVEMESH_LLM_BACKEND": "openai"})
    with pytest.raises(ConfigError, match="HIVEMESH_LLM_BACKEND"):
        build_backend({"HIVEMESH_LLM_BACKEND": "gpt"})
    with pytest.raises(ConfigError, match="HIVEMESH_LLM_TIMEOUT"):
        build_backend({"HIVEMESH_LLM_BASE_URL": "http://x", "HIVEMESH_LLM_TIMEOUT": "soon"})


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 25 Nov 2026 00:00:10 GMT", now=1795564800.0) == 10.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("later") is None


# --- OpenAI-compatible backend against a local server -----------------------------------------


@dataclass
class Seen:
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    path: str = ""


Writer = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader, seen: Seen) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    seen.path = lines[0].split(" ")[1]
    seen.headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    body = await reader.readexactly(int(seen.headers.get("content-length", "0")))
    seen.body = json.loads(body)


@dataclass
class Server:
    url: str
    seen: Seen


@pytest.fixture
def serve() -> Iterator[Callable[[Writer], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(respond: Writer) -> Server:
        seen = Seen()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await _read_request(reader, seen)
                await respond(writer)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return Server(f"http://127.0.0.1:{port}/v1", seen)

    yield start
    for server in servers:
        server.close()


def sse(*events: dict[str, Any] | str) -> bytes:
    out = []
    for event in events:
        out.append("data: " + (event if isinstance(event, str) else json.dumps(event)) + "\n\n")
    return "".join(out).encode()


def delta(content: str | None = None, *, finish: str | None = None, tool_calls: Any = None) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if content is not None:
        d["content"] = content
    if tool_calls is not None:
        d["tool_calls"] = tool_calls
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def stream_response(payload: bytes) -> Writer:
    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        writer.write(payload)
        await writer.drain()

    return respond


def error_response(status: int, body: dict[str, Any], headers: str = "") -> Writer:
    async def respond(writer: asyncio.StreamWriter) -> None:
        raw = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status} Error\r\ncontent-type: application/json\r\ncontent-length: {len(raw)}\r\n"
            f"{headers}connection: close\r\n\r\n".encode()
            + raw
        )
        await writer.drain()

    return respond


@pytest.fixture
async def backend_for() -> AsyncIterator[Callable[[str], OpenAICompatibleBackend]]:
    made: list[OpenAICompatibleBackend] = []

    def make(url: str) -> OpenAICompatibleBackend:
        backend = OpenAICompatibleBackend(
            LLMConfig(base_url=url, api_key="sk-test", model="tiny", read_timeout_s=5)
        )
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


WEATHER_TOOL = pb.FunctionSpec(name="current_time", description="Time in a place.")
WEATHER_TOOL.parameters.update({"type": "object", "properties": {"location": {"type": "string"}}})


async def test_normal_stream_maps_request_and_yields_text_usage_finish(serve: Any, backend_for: Any) -> None:
    server = await serve(
        stream_response(
            sse(
                delta("Hel"),
                delta("lo!"),
                delta(finish="stop"),
                {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 2}},
                "[DONE]",
            )
        )
    )
    call_args = struct_pb2.Struct()
    call_args.update({"location": "Tokyo"})
    req = request(
        pb.ChatMessage(role=SYSTEM, content="Be brief."),
        pb.ChatMessage(role=USER, content="hi"),
        pb.ChatMessage(
            role=ASSISTANT, tool_calls=[pb.ToolCall(id="c1", name="current_time", arguments=call_args)]
        ),
        pb.ChatMessage(role=TOOL, content="22:30", tool_call_id="c1", name="current_time"),
        tools=[WEATHER_TOOL],
        options=pb.GenerateOptions(max_tokens=50, temperature=0.5),
    )
    out = await collect(backend_for(server.url), req)
    assert [r.WhichOneof("kind") for r in out] == ["text_delta", "text_delta", "usage", "finish_reason"]
    assert text_of(out) == "Hello!"
    assert (out[2].usage.prompt_tokens, out[2].usage.completion_tokens) == (11, 2)
    assert out[3].finish_reason == pb.FINISH_REASON_STOP

    body, seen = server.seen.body, server.seen
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert body["model"] == "tiny"
    assert body["stream"] is True
    assert body["max_tokens"] == 50
    assert body["temperature"] == 0.5
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    assistant = body["messages"][2]
    assert assistant["content"] is None
    assert assistant["tool_calls"][0]["function"]["name"] == "current_time"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"location": "Tokyo"}
    assert body["messages"][3]["tool_call_id"] == "c1"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "current_time",
                "description": "Time in a place.",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
            },
        }
    ]


async def test_tool_call_split_across_deltas_is_assembled(serve: Any, backend_for: Any) -> None:
    first = [
        {"index": 0, "id": "call_9", "type": "function", "function": {"name": "calculator", "arguments": ""}}
    ]
    server = await serve(
        stream_response(
            sse(
                delta(tool_calls=first),
                delta(tool_calls=[{"index": 0, "function": {"arguments": '{"expre'}}]),
                delta(tool_calls=[{"index": 0, "function": {"arguments": 'ssion": "12 * '}}]),
                delta(tool_calls=[{"index": 0, "function": {"arguments": '(3 + 4)"}'}}]),
                delta(finish="tool_calls"),
                "[DONE]",
            )
        )
    )
    out = await collect(backend_for(server.url), request(pb.ChatMessage(role=USER, content="12*(3+4)")))
    calls = [r.tool_call for r in out if r.WhichOneof("kind") == "tool_call"]
    assert len(calls) == 1
    assert (calls[0].id, calls[0].name) == ("call_9", "calculator")
    assert dict(calls[0].arguments) == {"expression": "12 * (3 + 4)"}
    assert out[-1].finish_reason == pb.FINISH_REASON_TOOL_CALLS
    # The server sent no usage: it is estimated, never left out.
    assert [r.WhichOneof("kind") for r in out][-2] == "usage"


async def test_stream_cut_off_yields_what_arrived_then_fails_retryably(serve: Any, backend_for: Any) -> None:
    server = await serve(stream_response(sse(delta("The answer"), delta(" is"))))
    received: list[pb.GenerateResponse] = []

    async def consume() -> None:
        async for item in backend_for(server.url).generate(request(pb.ChatMessage(role=USER, content="q"))):
            received.append(item)

    with pytest.raises(Unavailable) as caught:
        await consume()
    assert text_of(received) == "The answer is"
    assert all(r.WhichOneof("kind") == "text_delta" for r in received)
    assert caught.value.reason == "LLM_STREAM_INTERRUPTED"
    assert caught.value.retryable


async def test_rate_limited_with_retry_after_is_resource_exhausted(serve: Any, backend_for: Any) -> None:
    server = await serve(error_response(429, {"error": {"message": "slow down"}}, "retry-after: 7\r\n"))
    with pytest.raises(ResourceExhausted) as caught:
        await collect(backend_for(server.url), request(pb.ChatMessage(role=USER, content="q")))
    assert caught.value.retry_after_s == 7.0
    assert caught.value.reason == "LLM_RATE_LIMITED"
    assert "slow down" in caught.value.message


async def test_server_error_is_unavailable(serve: Any, backend_for: Any) -> None:
    server = await serve(error_response(500, {"error": {"message": "CUDA out of memory"}}))
    with pytest.raises(Unavailable) as caught:
        await collect(backend_for(server.url), request(pb.ChatMessage(role=USER, content="q")))
    assert caught.value.code is Code.UNAVAILABLE
    assert caught.value.reason == "LLM_UPSTREAM_ERROR"
    assert caught.value.metadata["http_status"] == "500"
    assert "CUDA out of memory" in caught.value.message


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (400, InvalidArgument, "LLM_REQUEST_REJECTED"),
        (401, FailedPrecondition, "LLM_AUTH_FAILED"),
        (404, FailedPrecondition, "LLM_NOT_FOUND"),
    ],
)
async def test_client_errors_carry_the_upstream_message(
    serve: Any, backend_for: Any, status: int, error: type[HivemeshError], reason: str
) -> None:
    server = await serve(error_response(status, {"error": {"message": "model 'tiny' says no"}}))
    with pytest.raises(error) as caught:
        await collect(backend_for(server.url), request(pb.ChatMessage(role=USER, content="q")))
    assert caught.value.reason == reason
    assert "model 'tiny' says no" in caught.value.message
    assert caught.value.code is not Code.INTERNAL


async def test_unreachable_server_is_unavailable() -> None:
    # A port that was free a moment ago: nothing listens there.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = OpenAICompatibleBackend(LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", connect_timeout_s=2))
    try:
        with pytest.raises(Unavailable) as caught:
            await collect(backend, request(pb.ChatMessage(role=USER, content="q")))
        assert caught.value.reason == "LLM_UNREACHABLE"
    finally:
        await backend.aclose()


async def test_invalid_tool_arguments_are_not_passed_on(serve: Any, backend_for: Any) -> None:
    bad = [{"index": 0, "id": "c", "function": {"name": "calculator", "arguments": '{"expression": '}}]
    server = await serve(stream_response(sse(delta(tool_calls=bad), delta(finish="tool_calls"), "[DONE]")))
    with pytest.raises(Unavailable) as caught:
        await collect(backend_for(server.url), request(pb.ChatMessage(role=USER, content="q")))
    assert caught.value.reason == "LLM_INVALID_TOOL_CALL"
