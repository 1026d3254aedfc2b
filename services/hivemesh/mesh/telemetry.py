"""Tracing and structured logging.

Every process gets one OpenTelemetry tracer provider named after what it runs. Spans go to a JSON
lines file when ``HIVEMESH_TRACE_FILE`` is set (handy on a laptop and in tests) and to an OTLP
collector when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the OTLP exporter is installed. W3C trace
context rides in gRPC metadata between services and inside queued tasks between gateway and planner.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

_setup_lock = threading.Lock()


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per finished span to a file (several processes may share it)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            ctx = span.get_span_context()
            if ctx is None:
                continue
            lines.append(
                json.dumps(
                    {
                        "name": span.name,
                        "trace_id": format(ctx.trace_id, "032x"),
                        "span_id": format(ctx.span_id, "016x"),
                        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
                        "kind": span.kind.name,
                        "service": span.resource.attributes.get("service.name"),
                        "start_ns": span.start_time,
                        "end_ns": span.end_time,
                        "status": span.status.status_code.name,
                        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
                    },
                    sort_keys=True,
                )
            )
        if lines:
            # One write call per batch with O_APPEND keeps lines from several processes whole.
            with self._path.open("a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _plain(value: object) -> object:
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Sequence):
        return [str(v) for v in value]
    return str(value)


def setup_tracing(service_name: str, trace_file: Path | None) -> TracerProvider | None:
    """Install the process-wide tracer provider (once) and return it.

    With no exporter configured nothing would ever read a span, so none is recorded: the API's
    default tracer still carries incoming W3C context through every hop (trace ids in logs and
    errors stay right) at a fraction of the cost per call."""
    with _setup_lock:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            return current
        if trace_file is None and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return None
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if trace_file is not None:
            provider.add_span_processor(
                BatchSpanProcessor(JsonLinesSpanExporter(trace_file), schedule_delay_millis=200)
            )
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            _add_otlp(provider)
        trace.set_tracer_provider(provider)
        return provider


def _add_otlp(provider: TracerProvider) -> None:
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]  # noqa: PLC0415 - optional dependency
            OTLPSpanExporter,
        )
    except ImportError:
        logging.getLogger(__name__).warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp is not installed; "
            "spans are not exported to a collector"
        )
        return
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))


def recording() -> bool:
    """Whether this process records spans (``setup_tracing`` installed a provider with an exporter).
    When it does not, the interceptors only carry the W3C context from hop to hop."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def current_trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def inject() -> dict[str, str]:
    """The current trace context as a carrier (``traceparent``...) to store beside queued work."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str]) -> otel_context.Context:
    return propagate.extract(dict(carrier))


class _TraceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = current_trace_id()
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", ""),
        }
        for key in ("task_id", "service", "request_id"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload)


def setup_logging(level: str, *, json_lines: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_TraceFilter())
    handler.setFormatter(
        _JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Schema migrations run at every start; their step-by-step chatter is noise in service logs.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
