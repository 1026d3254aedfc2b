"""An OTLP/HTTP trace receiver for the console's waterfall: ``POST /v1/traces`` on the edge's port
(``HIVEMESH_CONSOLE_OTLP=on``), a protobuf ``ExportTraceServiceRequest`` as the standard
OpenTelemetry exporter sends it (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://<edge>/v1/traces``,
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf``), so the console shows a task's trace in a
cluster, where every service runs in its own pod.

Spans are kept in memory (``SpanStore``), by trace id and by the ``hivemesh.task.id`` attribute
that names a task's run, in the shape of the JSON-lines span file (traces.py), and nothing else:
the store is bounded by the number of traces, the spans per trace, the spans in all and their age,
the oldest trace going first, so no sender can make it grow without end. A body larger than the
edge's body limit is 413 (gzip bodies: once unpacked, too), one that is not an
``ExportTraceServiceRequest`` 400, another content type 415. With ``HIVEMESH_CONSOLE_OTLP_TOKEN``
a sender must present it (``Authorization: Bearer <token>``, which the exporter sends from
``OTEL_EXPORTER_OTLP_HEADERS``), else 401; without it the receiver takes spans from anyone who
reaches the edge's port, so keep that port in the cluster (docs/console.md).

Reading is as safe as the file: the console shows a task's spans only after the gateway said the
caller may see the task.
"""

from __future__ import annotations

import hmac
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from google.protobuf.message import DecodeError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hivemesh.console.traces import MAX_SPANS, TASK_ATTRIBUTE
from hivemesh.edge.errors import HttpError, bad_request

OTLP_PATH: Final = "/v1/traces"
PROTOBUF: Final = "application/x-protobuf"
DEFAULT_MAX_TRACES: Final = 2000
DEFAULT_MAX_TOTAL_SPANS: Final = 100_000
DEFAULT_MAX_AGE_S: Final = 3600.0
_KINDS: Final = {0: "INTERNAL", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUSES: Final = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass
class _Trace:
    spans: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[str] = field(default_factory=set)
    seen: float = 0.0


class SpanStore:
    """The spans of recent traces, bounded by ``max_traces``, ``MAX_SPANS`` a trace,
    ``max_total_spans`` in all and ``max_age_s`` since a trace last received a span."""

    def __init__(
        self,
        max_traces: int = DEFAULT_MAX_TRACES,
        max_total_spans: int = DEFAULT_MAX_TOTAL_SPANS,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        self._max_traces = max_traces
        self._max_total = max_total_spans
        self._max_age_s = max_age_s
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._by_task: dict[str, set[str]] = {}
        self._total = 0
        # Spans refused because their trace was full.
        self.dropped = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._total

    @property
    def traces(self) -> int:
        return len(self._traces)

    def add(self, spans: list[dict[str, Any]], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for span in spans:
                trace_id = span["trace_id"]
                found = self._traces.get(trace_id)
                if found is None:
                    found = self._traces[trace_id] = _Trace()
                if len(found.spans) >= MAX_SPANS:
                    self.dropped += 1
                    continue
                found.spans.append(span)
                found.seen = now
                self._traces.move_to_end(trace_id)
                self._total += 1
                task = span["attributes"].get(TASK_ATTRIBUTE)
                if isinstance(task, str) and task not in found.tasks:
                    found.tasks.add(task)
                    self._by_task.setdefault(task, set()).add(trace_id)
            self._evict(now)

    def _evict(self, now: float) -> None:
        while self._traces:
            trace_id, oldest = next(iter(self._traces.items()))
            if (
                len(self._traces) <= self._max_traces
                and self._total <= self._max_total
                and now - oldest.seen <= self._max_age_s
            ):
                return
            del self._traces[trace_id]
            self._total -= len(oldest.spans)
            for task in oldest.tasks:
                ids = self._by_task.get(task)
                if ids is not None:
                    ids.discard(trace_id)
                    if not ids:
                        del self._by_task[task]

    def trace_of(self, task_id: str, now: float | None = None) -> list[dict[str, Any]]:
        """Every span kept of the traces that ran ``task_id``, by start time."""
        with self._lock:
            self._evict(time.monotonic() if now is None else now)
            ids = self._by_task.get(task_id, set())
            found = [span for trace_id in ids for span in self._traces[trace_id].spans]
        found.sort(key=lambda s: (s.get("start_ns") or 0, s.get("end_ns") or 0))
        return found[:MAX_SPANS]


def _value(value: Any) -> object:
    """An OTLP ``AnyValue`` as the span file writes it (a list's items as text)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [str(_value(v)) for v in value.array_value.values]
    if kind == "kvlist_value":
        return str({kv.key: _value(kv.value) for kv in value.kvlist_value.values})
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind is None:
        return None
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, object]:
    return {kv.key: _value(kv.value) for kv in pairs}


def spans_of_request(body: bytes) -> list[dict[str, Any]]:
    """The spans of a protobuf ``ExportTraceServiceRequest``; ValueError when it is not one."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: PLC0415 - the otlp extra
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise ValueError(f"the body is not an OTLP ExportTraceServiceRequest: {exc}") from exc
    spans: list[dict[str, Any]] = []
    for resource_spans in request.resource_spans:
        service = _attributes(resource_spans.resource.attributes).get("service.name")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    raise ValueError("a span's trace_id must be 16 bytes and its span_id 8")
                spans.append(
                    {
                        "name": span.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_id": span.parent_span_id.hex() if span.parent_span_id else None,
                        "kind": _KINDS.get(span.kind, "INTERNAL"),
                        "service": service if isinstance(service, str) else None,
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "status": _STATUSES.get(span.status.code, "UNSET"),
                        "attributes": _attributes(span.attributes),
                    }
                )
    return spans


def otlp_available() -> bool:
    try:
        import opentelemetry.proto.collector.trace.v1.trace_service_pb2  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


class OtlpReceiver:
    """The ``POST /v1/traces`` route, filling ``store``; bodies (unpacked) of at most
    ``max_body_bytes``; ``token``: the bearer token a sender must present (empty: none)."""

    def __init__(self, store: SpanStore, max_body_bytes: int, token: str = "") -> None:
        self.store = store
        self._max = max_body_bytes
        self._token = token

    async def traces(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            spans = spans_of_request(body)
        except HttpError as refused:
            return JSONResponse(refused.body(), status_code=refused.status)
        except ValueError as exc:
            garbled = bad_request(str(exc))
            return JSONResponse(garbled.body(), status_code=garbled.status)
        self.store.add(spans)
        # An empty ExportTraceServiceResponse: all spans accepted.
        return Response(b"", media_type=PROTOBUF)

    async def _body(self, request: Request) -> bytes:
        if self._token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
                raise HttpError(
                    401,
                    "spans need the receiver's token (Authorization: Bearer <HIVEMESH_CONSOLE_OTLP_TOKEN>)",
                    "authentication_error",
                    "invalid_token",
                )
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != PROTOBUF:
            raise HttpError(
                415,
                f"spans must be sent as {PROTOBUF} (OTLP/HTTP protobuf), got {content_type or 'none'!r}",
                "invalid_request_error",
                "unsupported_media_type",
            )
        body = await request.body()
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding == "gzip":
            unpack = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            try:
                body = unpack.decompress(body, self._max + 1)
            except zlib.error as exc:
                raise bad_request(f"the body is not valid gzip: {exc}") from exc
        elif encoding != "identity":
            raise HttpError(
                415,
                f"content-encoding {encoding!r} is not supported (gzip or none)",
                "invalid_request_error",
                "unsupported_media_type",
            )
        if len(body) > self._max:
            raise HttpError(
                413,
                f"the request body is larger than {self._max} bytes",
                "invalid_request_error",
                "request_too_large",
            )
        return body
