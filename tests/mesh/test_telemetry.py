"""Telemetry of a whole mesh, read back as an operator's tools would: the spans from an in-memory
exporter (GenAI attribute names, one trace per task across the queue and its retries, each
service's own ``service.name``), the metrics from ``/metrics`` (names, labels, exemplars)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from hivemesh.mesh import genai, telemetry
from hivemesh.mesh.config import Settings
from tests.planner.test_llm_strategy import Reply, calls, execute, fake_model, llm_mesh, says

pytestmark = pytest.mark.slow


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def number(span: ReadableSpan, key: str) -> int:
    value = (span.attributes or {})[key]
    assert isinstance(value, int)
    return value


def named(spans: Sequence[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def unavailable() -> Reply:
    """The model server answers 503 (a retryable failure of the task's attempt)."""

    async def respond(writer: asyncio.StreamWriter) -> None:
        body = b'{"error": {"message": "overloaded"}}'
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n")
        writer.write(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()

    return respond


async def scrape(port: int) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"http://127.0.0.1:{port}/metrics", headers={"Accept": "application/openmetrics-text"}
        )
    response.raise_for_status()
    return response.text


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` whose labels include ``labels``."""
    found = []
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)( # .*)?", line)
        if match is None or match.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            found.append(float(match.group(3)))
    assert found, f"no sample {name} {labels}"
    return sum(found)


async def test_a_task_is_one_trace_of_genai_spans_each_with_its_service_name(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    with telemetry.recording_to(exporter):
        async with (
            fake_model(
                calls("calculator", {"expression": "6 * 7"}, "call_1"),
                says("The answer is 42"),
            ) as model,
            llm_mesh(settings, monkeypatch, model) as mesh,
        ):
            port = mesh.metrics.serve(0, "127.0.0.1")
            events = await execute(mesh, "what is six times seven?")
            metrics = await scrape(port)
    assert not telemetry.recording()  # nothing records once the block is left
    assert events[-1].WhichOneof("kind") == "completed"
    task_id = events[-1].task_id
    spans = exporter.get_finished_spans()

    (agent,) = named(spans, "invoke_agent")
    assert agent.name == "invoke_agent hivemesh"
    assert service_of(agent) == "hivemesh-planner"
    attributes = dict(agent.attributes or {})
    assert attributes[genai.OPERATION_NAME] == "invoke_agent"
    assert attributes[genai.AGENT_NAME_KEY] == "hivemesh"
    assert attributes[genai.TASK_ID] == task_id
    assert attributes[genai.CONVERSATION_ID] == "s1"
    assert attributes[genai.ATTEMPT] == 1
    assert attributes[genai.TASK_STATE] == "COMPLETED"

    chats = sorted(named(spans, "chat"), key=lambda s: s.start_time or 0)
    assert len(chats) == 2
    for chat in chats:
        assert chat.name == "chat fake-model"
        assert chat.kind == SpanKind.CLIENT
        assert service_of(chat) == "hivemesh-language"
        chat_attributes = dict(chat.attributes or {})
        assert chat_attributes[genai.OPERATION_NAME] == "chat"
        assert chat_attributes[genai.REQUEST_MODEL] == "fake-model"
        assert chat_attributes[genai.PROVIDER_NAME] == "openai"
        assert chat_attributes[genai.SERVER_ADDRESS] == "127.0.0.1"
        assert number(chat, genai.INPUT_TOKENS) > 0
        assert number(chat, genai.OUTPUT_TOKENS) >= 0
    # The answer's tokens (the first reply was a tool call, without text).
    assert number(chats[1], genai.OUTPUT_TOKENS) > 0
    assert [dict(c.attributes or {})[genai.FINISH_REASONS] for c in chats] == [("tool_calls",), ("stop",)]
    # The run's span adds up the tokens of its model calls.
    assert number(agent, genai.INPUT_TOKENS) == sum(number(c, genai.INPUT_TOKENS) for c in chats)
    assert number(agent, genai.OUTPUT_TOKENS) == sum(number(c, genai.OUTPUT_TOKENS) for c in chats)

    (tool_span,) = named(spans, "execute_tool")
    assert tool_span.name == "execute_tool calculator"
    assert service_of(tool_span) == "hivemesh-planner"
    tool_attributes = dict(tool_span.attributes or {})
    assert tool_attributes[genai.OPERATION_NAME] == "execute_tool"
    assert tool_attributes[genai.TOOL_NAME] == "calculator"
    assert tool_attributes[genai.TOOL_CALL_ID] == "call_1"
    assert tool_span.parent is not None
    assert tool_span.parent.span_id == agent.context.span_id
    # The tool service's server span of the call is a child of the execute_tool span.
    (invoke,) = [s for s in spans if s.name.endswith("ToolService/InvokeTool") and s.kind == SpanKind.SERVER]
    assert service_of(invoke) == "hivemesh-tool"
    ancestors = {s.context.span_id: s for s in spans}
    chain, current = [], invoke
    while current.parent is not None and current.parent.span_id in ancestors:
        current = ancestors[current.parent.span_id]
        chain.append(current.name)
    assert "execute_tool calculator" in chain
    assert "invoke_agent hivemesh" in chain

    # One trace from the submission (the gateway's span) to the last model call.
    (submit,) = [s for s in spans if s.name.endswith("GatewayService/ExecuteTask")]
    assert service_of(submit) == "hivemesh-gateway"
    task_trace = submit.context.trace_id
    for span in (agent, tool_span, invoke, *chats):
        assert span.context.trace_id == task_trace
    assert {service_of(s) for s in spans if s.context.trace_id == task_trace} >= {
        "hivemesh-gateway",
        "hivemesh-planner",
        "hivemesh-language",
        "hivemesh-memory",
        "hivemesh-tool",
    }

    # The metrics of the same run, from /metrics.
    assert (
        sample(
            metrics,
            "grpc_server_handled_total",
            grpc_type="unary",
            grpc_service="hivemesh.tool.v1.ToolService",
            grpc_method="InvokeTool",
            grpc_code="OK",
        )
        == 1
    )
    assert (
        sample(
            metrics,
            "grpc_server_handling_seconds_count",
            grpc_type="server_stream",
            grpc_service="hivemesh.gateway.v1.GatewayService",
            grpc_method="ExecuteTask",
        )
        == 1
    )
    assert sample(metrics, "hivemesh_tool_calls_total", tool="calculator", outcome="OK") == 1
    assert sample(metrics, "hivemesh_tool_duration_seconds_count", tool="calculator") == 1
    assert sample(
        metrics, "gen_ai_client_token_usage_sum", gen_ai_request_model="fake-model", gen_ai_token_type="input"
    ) == sum(number(c, genai.INPUT_TOKENS) for c in chats)
    assert (
        sample(
            metrics,
            "gen_ai_client_operation_duration_seconds_count",
            gen_ai_operation_name="chat",
            gen_ai_request_model="fake-model",
            error_type="",
        )
        == 2
    )
    assert sample(metrics, "hivemesh_tasks_total", state="COMPLETED") == 1
    assert sample(metrics, "hivemesh_task_duration_seconds_count", state="COMPLETED") == 1
    assert sample(metrics, "process_cpu_seconds_total") > 0
    assert sample(metrics, "process_resident_memory_bytes") > 0
    # A latency bucket links to the trace of a call that landed in it.
    exemplars = re.findall(
        r'^grpc_server_handling_seconds_bucket\{.*\} \S+ # \{trace_id="(\w+)"\}', metrics, re.M
    )
    assert exemplars
    assert format(task_trace, "032x") in exemplars


async def test_a_retried_task_continues_the_trace_of_its_submission(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    with telemetry.recording_to(exporter):
        async with (
            fake_model(unavailable(), says("Second time lucky")) as model,
            llm_mesh(settings, monkeypatch, model) as mesh,
        ):
            port = mesh.metrics.serve(0, "127.0.0.1")
            events = await execute(mesh, "hello?")
            metrics = await scrape(port)
    assert events[-1].WhichOneof("kind") == "completed"
    spans = exporter.get_finished_spans()
    first, second = sorted(named(spans, "invoke_agent"), key=lambda s: s.start_time or 0)
    assert first.context.trace_id == second.context.trace_id
    assert dict(first.attributes or {})[genai.DELIVERY] == 1
    assert dict(second.attributes or {})[genai.DELIVERY] == 2
    assert first.status.status_code == StatusCode.ERROR
    assert dict(first.attributes or {})[genai.ERROR_TYPE] == "LLM_UPSTREAM_ERROR"
    assert dict(second.attributes or {})[genai.TASK_STATE] == "COMPLETED"
    failed_chat, good_chat = sorted(named(spans, "chat"), key=lambda s: s.start_time or 0)
    assert failed_chat.status.status_code == StatusCode.ERROR
    assert failed_chat.context.trace_id == good_chat.context.trace_id == first.context.trace_id
    assert (
        sample(
            metrics,
            "gen_ai_client_operation_duration_seconds_count",
            gen_ai_request_model="fake-model",
            error_type="LLM_UPSTREAM_ERROR",
        )
        == 1
    )


async def test_without_an_exporter_no_span_is_recorded(settings: Settings) -> None:
    assert not telemetry.recording()
    with telemetry.span("invoke_agent hivemesh") as span:
        assert not span.is_recording()
        assert not span.get_span_context().is_valid
