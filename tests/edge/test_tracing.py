"""The edge's spans, read back from an in-memory exporter: each HTTP request is a SERVER span with
OpenTelemetry's HTTP attributes, named by its route, continuing the caller's trace, and the
gateway calls it makes are its children in the same trace."""

from __future__ import annotations

import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from hivemesh.edge.app import Edge, EdgeServer
from hivemesh.edge.config import EdgeConfig
from hivemesh.mesh import telemetry
from tests.edge.conftest import ServedEdge, serve_edge
from tests.support import make_settings

pytestmark = pytest.mark.slow


@pytest.fixture
async def traced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[ServedEdge, InMemorySpanExporter]]:
    """The mesh and its edge, every span of this process recorded."""
    monkeypatch.setenv("HIVEMESH_AUTH", "none")
    settings = make_settings(tmp_path / "data")
    exporter = InMemorySpanExporter()
    with telemetry.recording_to(exporter):
        async with serve_edge(settings) as served:
            yield served, exporter


def servers(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.kind == SpanKind.SERVER and s.name == name]


def attributes(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_request_is_a_server_span_whose_gateway_calls_are_its_children(
    traced: tuple[ServedEdge, InMemorySpanExporter],
) -> None:
    served, exporter = traced
    port = int(served.url.rsplit(":", 1)[1])
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        made = await http.post("/console/api/tasks", json={"text": "what is 2 + 2?", "user": "tracer"})
        task_id = made.json()["task"]["task_id"]
        exporter.clear()
        found = await http.get(f"/console/api/tasks/{task_id}", headers={"user-agent": "probe/1"})
    assert found.status_code == 200
    spans = exporter.get_finished_spans()

    (edge,) = servers(spans, "GET /console/api/tasks/{task_id}")
    assert edge.resource.attributes["service.name"] == "hivemesh-edge"
    assert attributes(edge) == {
        "http.request.method": "GET",
        "http.route": "/console/api/tasks/{task_id}",
        "url.path": f"/console/api/tasks/{task_id}",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "server.address": "127.0.0.1",
        "server.port": port,
        "client.address": "127.0.0.1",
        "user_agent.original": "probe/1",
        "http.response.status_code": 200,
    }
    assert edge.status.status_code == StatusCode.UNSET
    # The gateway's GetTask: a CLIENT span of the edge under the request's span, and the
    # gateway's SERVER span under that, all in one trace.
    (call,) = [s for s in spans if s.kind == SpanKind.CLIENT and s.name.endswith("GatewayService/GetTask")]
    assert call.resource.attributes["service.name"] == "hivemesh-edge"
    assert parent_of(call) == edge.context.span_id
    (answered,) = servers(spans, "/hivemesh.gateway.v1.GatewayService/GetTask")
    assert answered.resource.attributes["service.name"] == "hivemesh-gateway"
    assert parent_of(answered) == call.context.span_id
    assert {edge.context.trace_id, call.context.trace_id, answered.context.trace_id} == {
        edge.context.trace_id
    }


async def test_a_request_continues_its_callers_trace_and_refusals_have_spans_too(
    traced: tuple[ServedEdge, InMemorySpanExporter],
) -> None:
    served, exporter = traced
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        listed = await http.get(
            "/console/api/tasks",
            params={"state": "finished"},
            headers={"traceparent": f"00-{trace_id}-{span_id}-01"},
        )
        missing = await http.get("/no/such/door")
    assert (listed.status_code, missing.status_code) == (400, 404)
    spans = exporter.get_finished_spans()

    (bad,) = servers(spans, "GET /console/api/tasks")
    assert format(bad.context.trace_id, "032x") == trace_id
    assert bad.parent is not None
    assert format(bad.parent.span_id, "016x") == span_id
    assert attributes(bad)["http.response.status_code"] == 400
    # A client's mistake is not the server's error.
    assert bad.status.status_code == StatusCode.UNSET

    (unrouted,) = servers(spans, "GET")
    assert attributes(unrouted)["http.response.status_code"] == 404
    assert attributes(unrouted)["url.path"] == "/no/such/door"
    assert "http.route" not in attributes(unrouted)


async def test_a_server_error_marks_the_span_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEMESH_AUTH", "none")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"  # nothing listens there once closed
    exporter = InMemorySpanExporter()
    with telemetry.recording_to(exporter):
        # An edge whose gateway is down: the console's API answers 503.
        front = Edge(
            make_settings(tmp_path / "data"),
            EdgeConfig(port=0, gateway_patience_s=0.2),
            gateway_address=closed,
        )
        server = EdgeServer(front, "127.0.0.1", 0, grace_s=1.0)
        port = await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                down = await http.get("/console/api/tasks")
        finally:
            await server.stop(1.0)
    assert down.status_code == 503
    (failed,) = servers(exporter.get_finished_spans(), "GET /console/api/tasks")
    assert failed.status.status_code == StatusCode.ERROR
    assert attributes(failed)["http.response.status_code"] == 503
    assert attributes(failed)["error.type"] == "503"
