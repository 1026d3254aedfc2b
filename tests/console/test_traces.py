"""A task's spans read back from the JSON-lines trace file, as the mesh's exporter writes it."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from hivemesh.console.traces import TASK_ATTRIBUTE, SpanFile
from hivemesh.mesh.telemetry import JsonLinesSpanExporter


def write_spans(path: Path) -> None:
    """Two tasks' traces, as a gateway and a worker record them, and a span of no task."""
    provider = TracerProvider(resource=Resource.create({"service.name": "hivemesh"}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("test")
    for task_id in ("t1", "t2"):
        with (
            tracer.start_as_current_span(
                "/hivemesh.gateway.v1.GatewayService/SubmitTask", kind=SpanKind.SERVER
            ),
            tracer.start_as_current_span("task.run", attributes={TASK_ATTRIBUTE: task_id}),
            tracer.start_as_current_span(
                "/hivemesh.tool.v1.ToolService/InvokeTool",
                kind=SpanKind.CLIENT,
                attributes={"rpc.service": "hivemesh.tool.v1.ToolService"},
            ),
        ):
            pass
    with tracer.start_as_current_span("/grpc.health.v1.Health/Check"):
        pass
    provider.shutdown()


async def test_a_tasks_trace_is_every_span_of_the_trace_that_ran_it(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    write_spans(path)
    found = await SpanFile(path).trace_of("t1")
    assert found.whole_file
    assert [s["name"] for s in found.spans] == [
        "/hivemesh.gateway.v1.GatewayService/SubmitTask",
        "task.run",
        "/hivemesh.tool.v1.ToolService/InvokeTool",
    ]
    assert len({s["trace_id"] for s in found.spans}) == 1
    other = await SpanFile(path).trace_of("t2")
    assert other.spans[0]["trace_id"] != found.spans[0]["trace_id"]
    assert (await SpanFile(path).trace_of("t3")).spans == []
    assert (await SpanFile(tmp_path / "none.jsonl").trace_of("t1")).spans == []


async def test_only_the_newest_part_of_a_long_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    write_spans(path)
    # Spans are written as they end: t1's three, t2's three, the health check.
    lines = path.read_text().splitlines()
    assert len(lines) == 7
    newest = sum(len(line) + 1 for line in lines[-4:])
    # The newest four lines and the end of the one before: that partial line is left out.
    bounded = SpanFile(path, max_bytes=newest + 20)
    found = await bounded.trace_of("t2")
    assert (found.read_bytes, found.whole_file) == (newest + 20, False)
    assert [s["name"] for s in found.spans] == [
        "/hivemesh.gateway.v1.GatewayService/SubmitTask",
        "task.run",
        "/hivemesh.tool.v1.ToolService/InvokeTool",
    ]
    assert (await bounded.trace_of("t1")).spans == []
