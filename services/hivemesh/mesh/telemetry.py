"""Tracing and structured logging.

Every process gets one OpenTelemetry tracer provider, ``ServiceTracers``, whose spans carry the
``service.name`` of the service they were made for (``hivemesh-gateway``...), also when the five
run in one process. Spans go to a JSON lines file when ``HIVEMESH_TRACE_FILE`` is set (handy on a
laptop and in tests) and to an OTLP collector as the standard ``OTEL_*`` variables say, with the
``otlp`` extra installed. W3C trace context rides in gRPC metadata between services and inside
queued tasks between gateway and planner.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.util.types import Attributes

from hivemesh.mesh.config import TracingConfig, otlp_protocol

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


# The service on whose behalf the current code runs (``hivemesh-planner``...): set by the call
# pipeline and the planner's workers while spans are recorded, read when a span starts.
_serving: contextvars.ContextVar[str] = contextvars.ContextVar("hivemesh_serving", default="")


def service_name(service: str) -> str:
    """The ``service.name`` of one of the mesh's services (``planner`` -> ``hivemesh-planner``)."""
    return f"hivemesh-{service}"


def serving_as(name: str) -> contextvars.Token[str]:
    """Make the spans started from here on (until ``reset_serving``) belong to service ``name``."""
    return _serving.set(name)


def reset_serving(token: contextvars.Token[str]) -> None:
    _serving.reset(token)


class _Shared(SpanProcessor):
    """Hands every finished span to the process's exporters, whichever service's provider made it.
    Each service's provider holds one; the exporters are shut down once, by ``ServiceTracers``."""

    def __init__(self, processors: list[SpanProcessor]) -> None:
        self._processors = processors

    def on_end(self, span: ReadableSpan) -> None:
        for processor in tuple(self._processors):
            processor.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in tuple(self._processors))


class ServiceTracers(trace.TracerProvider):
    """The process's tracer provider: one SDK provider per service, each with its own
    ``service.name`` (so the five services of ``hivemesh up`` show as five in a trace), all feeding
    the same exporters. A span belongs to the service the code runs for (``serving_as``), or to the
    process's name outside any service. With no exporter attached, tracers hand out OpenTelemetry's
    no-op tracer, which carries the W3C context without recording anything."""

    def __init__(self, process_name: str) -> None:
        self._process_name = process_name
        self._processors: list[SpanProcessor] = []
        self._providers: dict[str, TracerProvider] = {}
        self._tracers: dict[tuple[str, str], trace.Tracer] = {}
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self._processors)

    def add_processor(self, processor: SpanProcessor) -> None:
        with self._lock:
            self._processors.append(processor)

    def remove_processor(self, processor: SpanProcessor) -> None:
        with self._lock:
            self._processors.remove(processor)

    def provider(self, name: str) -> TracerProvider:
        """The SDK provider of service ``name`` (made on first use)."""
        with self._lock:
            found = self._providers.get(name)
            if found is None:
                # Resource.create adds OTEL_RESOURCE_ATTRIBUTES (deployment.environment...); the
                # service's own name wins over OTEL_SERVICE_NAME, which would make them all one.
                found = TracerProvider(resource=Resource.create({"service.name": name}))
                found.add_span_processor(_Shared(self._processors))
                self._providers[name] = found
            return found

    def tracer_for(self, library: str) -> trace.Tracer:
        """The tracer the current code's spans start from."""
        if not self._processors:
            return _NO_OP
        service = _serving.get() or self._process_name
        found = self._tracers.get((service, library))
        if found is None:
            found = self._tracers[(service, library)] = self.provider(service).get_tracer(library)
        return found

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace.Tracer:
        return _RoutingTracer(self, instrumenting_module_name)

    def shutdown(self) -> None:
        with self._lock:
            processors, self._processors[:] = list(self._processors), []
        for processor in processors:
            processor.shutdown()


_NO_OP = trace.NoOpTracer()


class _RoutingTracer(trace.Tracer):
    """A tracer whose spans belong to the service current when each span starts."""

    def __init__(self, tracers: ServiceTracers, library: str) -> None:
        self._tracers = tracers
        self._library = library

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        return self._tracers.tracer_for(self._library).start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )

    @contextlib.contextmanager
    def start_as_current_span(  # type: ignore[override]  # the same context manager
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


def _installed(process_name: str) -> ServiceTracers:
    """The process's ``ServiceTracers``, installed as the global tracer provider on first use."""
    current = trace.get_tracer_provider()
    if isinstance(current, ServiceTracers):
        return current
    if isinstance(current, TracerProvider):
        raise RuntimeError("another OpenTelemetry tracer provider is installed in this process")
    tracers = ServiceTracers(process_name)
    trace.set_tracer_provider(tracers)
    return tracers


def setup_tracing(process_name: str, config: TracingConfig) -> ServiceTracers | None:
    """Install the process-wide tracer provider (once) with the exporters ``config`` names and
    return it.

    With no exporter configured nothing would ever read a span, so none is recorded: the API's
    default tracer still carries incoming W3C context through every hop (trace ids in logs and
    errors stay right) at a fraction of the cost per call."""
    with _setup_lock:
        current = trace.get_tracer_provider()
        if isinstance(current, ServiceTracers) and current.active:
            return current
        otlp = exporter_for(config.otlp_protocol)
        trace_file = config.file
        if trace_file is None and otlp is None:
            return None
        tracers = _installed(process_name)
        if trace_file is not None:
            tracers.add_processor(
                BatchSpanProcessor(JsonLinesSpanExporter(trace_file), schedule_delay_millis=200)
            )
        if otlp is not None:
            tracers.add_processor(BatchSpanProcessor(otlp))
        return tracers


@contextlib.contextmanager
def recording_to(exporter: SpanExporter, process_name: str = "hivemesh") -> Iterator[ServiceTracers]:
    """Record every span of this process to ``exporter`` (synchronously, as each ends) while the
    block runs: servers and channels built inside it trace their calls. For tests and tools that
    read spans back in-process (an ``InMemorySpanExporter``)."""
    processor = SimpleSpanProcessor(exporter)
    with _setup_lock:
        tracers = _installed(process_name)
        tracers.add_processor(processor)
    try:
        yield tracers
    finally:
        tracers.remove_processor(processor)


def otlp_exporter(env: Mapping[str, str]) -> SpanExporter | None:
    """The OTLP span exporter the standard variables of ``env`` ask for, or None."""
    return exporter_for(otlp_protocol(env))


def exporter_for(protocol: str | None) -> SpanExporter | None:
    """The OTLP span exporter for ``protocol`` (see ``TracingConfig.otlp_protocol``), or None."""
    if protocol is None:
        return None
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415 - the otlp extra
                OTLPSpanExporter as GrpcExporter,
            )

            return GrpcExporter()
        if protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415 - the otlp extra
                OTLPSpanExporter as HttpExporter,
            )

            return HttpExporter()
    except ImportError:
        logging.getLogger(__name__).warning(
            "OTLP trace export is configured but its exporter is not installed "
            "(pip install 'hivemesh[otlp]'); spans are not exported to a collector"
        )
        return None
    logging.getLogger(__name__).warning(
        "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported (grpc or http/protobuf); spans are not exported",
        protocol,
    )
    return None


def recording() -> bool:
    """Whether this process records spans (``setup_tracing`` or ``recording_to`` attached an
    exporter). When it does not, the interceptors only carry the W3C context from hop to hop."""
    provider = trace.get_tracer_provider()
    return isinstance(provider, ServiceTracers) and provider.active


_NO_SPAN = contextlib.nullcontext(trace.INVALID_SPAN)


def span(
    name: str, kind: trace.SpanKind = trace.SpanKind.INTERNAL, attributes: Attributes = None
) -> contextlib.AbstractContextManager[trace.Span]:
    """A span made current for a block, when this process records spans; otherwise nothing is
    built (the block sees the invalid span, whose setters do nothing)."""
    if not recording():
        return _NO_SPAN
    return trace.get_tracer("hivemesh").start_as_current_span(name, kind=kind, attributes=attributes)


def start_span(
    name: str, kind: trace.SpanKind = trace.SpanKind.INTERNAL, attributes: Attributes = None
) -> trace.Span:
    """A span that is not made current (the caller ends it), when this process records spans;
    otherwise the invalid span, whose setters do nothing."""
    if not recording():
        return trace.INVALID_SPAN
    return trace.get_tracer("hivemesh").start_span(name, kind=kind, attributes=attributes)


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, ServiceTracers):
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
