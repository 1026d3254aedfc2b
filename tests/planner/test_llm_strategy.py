"""The LLM planner strategy (HIVEMESH_PLANNER_STRATEGY=llm) with all five services real, on port 0,
and the language service's Generate talking to a local fake OpenAI-compatible server that answers
from a script and records every request it gets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import TaskEvent, TaskOptions
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.config import Settings
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub
from tests.support import RunningMesh, start_mesh

pytestmark = pytest.mark.slow

Reply = Callable[[asyncio.StreamWriter], Awaitable[None]]


# --- a fake OpenAI-compatible chat completions server -----------------------------------------


def sse(*events: dict[str, Any] | str) -> bytes:
    return "".join("data: " + (e if isinstance(e, str) else json.dumps(e)) + "\n\n" for e in events).encode()


def delta(content: str | None = None, *, finish: str | None = None, tool_calls: Any = None) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if content is not None:
        d["content"] = content
    if tool_calls is not None:
        d["tool_calls"] = tool_calls
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def streamed(payload: bytes) -> Reply:
    """A 200 event stream whose body ends when the connection closes."""

    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        writer.write(payload)
        await writer.drain()

    return respond


def says(text: str) -> Reply:
    """The model answers ``text`` in word-sized deltas."""
    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    return streamed(sse(*(delta(p) for p in pieces), delta(finish="stop"), "[DONE]"))


def calls(name: str, arguments: dict[str, Any], call_id: str) -> Reply:
    """The model calls one tool, its arguments split across two deltas as real servers do."""
    raw = json.dumps(arguments)
    half = len(raw) // 2
    first = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    return streamed(
        sse(
            delta(tool_calls=[first]),
            delta(tool_calls=[{"index": 0, "function": {"arguments": raw[:half]}}]),
            delta(tool_calls=[{"index": 0, "function": {"arguments": raw[half:]}}]),
            delta(finish="tool_calls"),
            "[DONE]",
        )
    )


def cut_chunked(payload: bytes) -> Reply:
    """A chunked event stream dropped in the middle of a chunk: the HTTP framing itself breaks."""

    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        writer.write(b"%x\r\n" % len(payload) + payload + b"\r\n")
        writer.write(b"%x\r\n" % 4096 + b"data: ")
        await writer.drain()

    return respond


@dataclass
class FakeModel:
    """Answers the n-th request with the n-th reply of the script (the last one once the script
    runs out) and keeps the JSON body of every request."""

    script: Sequence[Reply]
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in head.decode().split("\r\n")[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(json.loads(body))
            await self.script[min(len(self.requests), len(self.script)) - 1](writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def fake_model(*script: Reply) -> AsyncIterator[FakeModel]:
    model = FakeModel(script)
    server = await asyncio.start_server(model.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    model.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield model
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def llm_mesh(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    model: FakeModel,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[RunningMesh]:
    """All five services with the LLM strategy; each service reads its own variables (HIVEMESH_LLM_*,
    HIVEMESH_PLANNER_STRATEGY, those of ``env``) when built."""
    monkeypatch.setenv("HIVEMESH_LLM_BASE_URL", model.url)
    monkeypatch.setenv("HIVEMESH_LLM_MODEL", "fake-model")
    monkeypatch.setenv("HIVEMESH_LLM_TIMEOUT", "10")
    monkeypatch.setenv("HIVEMESH_PLANNER_STRATEGY", "llm")
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    mesh = await start_mesh(settings)
    try:
        yield mesh
    finally:
        await mesh.stop()


async def execute(mesh: RunningMesh, text: str, options: TaskOptions | None = None) -> list[TaskEvent]:
    stub = GatewayServiceStub(mesh.client("gateway"))
    request = gw.ExecuteTaskRequest(
        request_id=f"req-{text}", text=text, scope=Scope(user_id="ana", session_id="s1"), options=options
    )
    return [response.event async for response in stub.ExecuteTask(request)]


def of_kind(events: Sequence[TaskEvent], kind: str) -> list[TaskEvent]:
    return [e for e in events if e.WhichOneof("kind") == kind]


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


# --- the tests ---------------------------------------------------------------------------------


async def test_the_model_calls_the_calculator_and_answers_with_its_result(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        fake_model(calls("calculator", {"expression": "6 * 7"}, "call_1"), says("The answer is 42")) as model,
        llm_mesh(settings, monkeypatch, model) as mesh,
    ):
        events = await execute(mesh, "what is six times seven?")
        listed = await ToolServiceStub(mesh.client("tool")).ListTools(tool.ListToolsRequest(page_size=100))

    assert events[-1].WhichOneof("kind") == "completed"
    assert events[-1].completed.answer == "The answer is 42"
    task_id = events[-1].task_id
    called = of_kind(events, "tool_called")
    assert [(e.tool_called.tool_name, e.tool_called.step) for e in called] == [("calculator", 1)]
    assert called[0].tool_called.idempotency_key == f"{task_id}:1"
    assert json_format.MessageToDict(called[0].tool_called.arguments) == {"expression": "6 * 7"}
    results = of_kind(events, "tool_result")
    assert [(e.tool_result.tool_name, e.tool_result.display) for e in results] == [("calculator", "42")]
    assert not results[0].tool_result.HasField("error")
    assert "".join(e.answer_delta.text for e in of_kind(events, "answer_delta")) == "The answer is 42"

    assert len(model.requests) == 2
    first, second = model.requests
    assert first["model"] == "fake-model"
    assert first["messages"][-1] == {"role": "user", "content": "what is six times seven?"}
    assistant = second["messages"][-2]
    assert assistant["role"] == "assistant"
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_1"]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"expression": "6 * 7"}
    assert second["messages"][-1] == {
        "role": "tool",
        "content": "42",
        "tool_call_id": "call_1",
        "name": "calculator",
    }
    calculator = next(spec for spec in listed.tools if spec.name == "calculator")
    schema = json_format.MessageToDict(calculator.arguments_schema)
    assert schema["properties"]["expression"]["type"] == "string"
    offered = {t["function"]["name"]: t["function"] for t in second["tools"]}
    assert offered["calculator"]["parameters"] == schema
    assert offered["calculator"]["description"] == calculator.description
    assert first["tools"] == second["tools"]


async def test_a_model_that_keeps_calling_tools_fails_with_too_many_steps(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        fake_model(calls("calculator", {"expression": "1 + 1"}, "again")) as model,
        llm_mesh(settings, monkeypatch, model) as mesh,
    ):
        events = await execute(mesh, "count forever", TaskOptions(max_steps=2))

    assert events[-1].WhichOneof("kind") == "failed"
    error = events[-1].failed.error
    assert error.reason == "TOO_MANY_STEPS"
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert not error.retryable
    # The allowed steps ran, each under its own key; the one beyond the limit never did.
    task_id = events[-1].task_id
    keys = [e.tool_called.idempotency_key for e in of_kind(events, "tool_called")]
    assert keys == [f"{task_id}:1", f"{task_id}:2"]
    assert len(of_kind(events, "tool_result")) == 2
    assert len(model.requests) == 3
    assert "completed" not in [e.WhichOneof("kind") for e in events]


async def test_a_schema_violation_is_fed_back_to_the_model_which_then_answers(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        fake_model(
            calls("calculator", {"expression": "", "precision": 3}, "bad"),
            says("I could not compute that."),
        ) as model,
        llm_mesh(settings, monkeypatch, model) as mesh,
    ):
        events = await execute(mesh, "what is nothing?")

    assert events[-1].WhichOneof("kind") == "completed"
    assert events[-1].completed.answer == "I could not compute that."
    results = of_kind(events, "tool_result")
    assert len(results) == 1
    error = results[0].tool_result.error
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert not error.retryable
    assert error.message
    assert len(model.requests) == 2
    fed_back = tool_messages(model.requests[1])
    assert len(fed_back) == 1
    assert fed_back[0]["tool_call_id"] == "bad"
    assert error.message in fed_back[0]["content"]


async def test_a_call_of_a_name_never_offered_goes_to_the_tool_service_and_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built-in planner's memory steps are not the model's to call: such a call is an unknown
    tool for ToolService, and its refusal is fed back rather than crashing the task."""
    async with (
        fake_model(calls("memory.remember", {}, "mem"), says("Sorry, I cannot remember that.")) as model,
        llm_mesh(settings, monkeypatch, model) as mesh,
    ):
        events = await execute(mesh, "remember nothing")

    assert events[-1].WhichOneof("kind") == "completed"
    assert events[-1].completed.answer == "Sorry, I cannot remember that."
    results = of_kind(events, "tool_result")
    assert [e.tool_result.tool_name for e in results] == ["memory.remember"]
    error = results[0].tool_result.error
    assert error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert not error.retryable
    offered = {t["function"]["name"] for t in model.requests[0]["tools"]}
    assert "memory.remember" not in offered
    fed_back = tool_messages(model.requests[1])
    assert [m["tool_call_id"] for m in fed_back] == ["mem"]
    assert error.message in fed_back[0]["content"]


@pytest.mark.parametrize("framing", [streamed, cut_chunked], ids=["connection-close", "chunked"])
async def test_a_stream_cut_off_half_way_fails_the_task_retryably(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, framing: Callable[[bytes], Reply]
) -> None:
    cut = framing(sse(delta("The answer"), delta(" is")))
    async with (
        fake_model(cut) as model,
        llm_mesh(settings, monkeypatch, model, {"HIVEMESH_MAX_ATTEMPTS": "1"}) as mesh,
    ):
        events = await execute(mesh, "what is 6 * 7?", TaskOptions(deadline=Duration(seconds=20)))

    assert events[-1].WhichOneof("kind") == "failed"
    error = events[-1].failed.error
    assert error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert error.reason == "LLM_STREAM_INTERRUPTED"
    assert error.retryable
    assert "before the reply was complete" in error.message
    assert "completed" not in [e.WhichOneof("kind") for e in events]
    assert len(model.requests) == 1
