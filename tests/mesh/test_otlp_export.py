"""The OTLP exporter (the ``otlp`` extra) as the standard OTEL_* variables configure it, sending to
a real OTLP/gRPC trace collector on port 0."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
    TraceServiceServicer,
    add_TraceServiceServicer_to_server,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from hivemesh.mesh import genai
from hivemesh.mesh.telemetry import otlp_exporter


class Collector(TraceServiceServicer):
    def __init__(self) -> None:
        self.received: list[otlp.ExportTraceServiceRequest] = []

    async def Export(
        self, request: otlp.ExportTraceServiceRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> otlp.ExportTraceServiceResponse:
        self.received.append(request)
        return otlp.ExportTraceServiceResponse()


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, int]]:
    server = grpc.aio.server()
    servicer = Collector()
    add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]  # generated without types
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, port
    finally:
        await server.stop(None)


async def test_an_endpoint_sends_spans_to_the_collector_over_grpc(
    collector: tuple[Collector, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    servicer, port = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    # The exporter reads the endpoint and the insecure flag from the process's environment.
    exporter = otlp_exporter(os.environ)
    assert isinstance(exporter, GrpcExporter)
    provider = TracerProvider(resource=Resource.create({"service.name": "hivemesh-planner"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("test").start_span(
        "invoke_agent hivemesh", attributes={genai.OPERATION_NAME: genai.INVOKE_AGENT}
    )
    await asyncio.to_thread(span.end)  # the exporter's call blocks; the collector runs on this loop
    await asyncio.to_thread(provider.shutdown)
    (request,) = servicer.received
    (resource_spans,) = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
    assert service == "hivemesh-planner"
    (sent,) = resource_spans.scope_spans[0].spans
    assert sent.name == "invoke_agent hivemesh"
    assert {a.key: a.value.string_value for a in sent.attributes}[genai.OPERATION_NAME] == "invoke_agent"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, GrpcExporter),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, GrpcExporter),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, HttpExporter),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            HttpExporter,
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_TRACES_EXPORTER": "none"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_SDK_DISABLED": "true"}, None),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, None),
    ],
)
def test_the_standard_variables_choose_the_exporter(env: dict[str, str], expected: type | None) -> None:
    exporter = otlp_exporter(env)
    if expected is None:
        assert exporter is None
        return
    assert exporter is not None
    assert isinstance(exporter, expected)
    exporter.shutdown()
