"""Server and client interceptors. ``server_interceptors`` and ``client_interceptors`` assemble them,
in order, in one place each.

Server, outermost first: tracing (OpenTelemetry, extracts W3C context from metadata) -> metrics
(count, code, duration) -> context (request id, inbound deadline) -> errors (domain error -> status
with ErrorInfo; anything else -> INTERNAL, logged with the trace id) -> validation (protovalidate ->
INVALID_ARGUMENT with field paths) -> the servicer.

Client: tracing (injects W3C context) -> context (request id forwarded; timeout bounded by the
inbound deadline, a default when there is none).
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import grpc
import protovalidate
from google.protobuf.message import Message
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor

from hivemesh.mesh import deadlines
from hivemesh.mesh.errors import Code, FieldViolation, HivemeshError, InvalidArgument
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.status import grpc_code, internal_status, to_status, trailing_metadata
from hivemesh.mesh.telemetry import current_trace_id

_log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("hivemesh_request_id", default="")

Unary: TypeAlias = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
Streaming: TypeAlias = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any]"]]


def current_request_id() -> str:
    return _request_id.get()


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2) if method.count("/") == 2 else ("", "", method)
    return service, name


if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
    _UnaryUnaryClient = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStreamClient = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
else:  # the grpc classes are not generic at run time
    _ServerInterceptor = grpc.aio.ServerInterceptor
    _UnaryUnaryClient = grpc.aio.UnaryUnaryClientInterceptor
    _UnaryStreamClient = grpc.aio.UnaryStreamClientInterceptor


class _Wrapping(_ServerInterceptor):
    """Wraps the behaviour of unary-request handlers; client-streaming handlers pass through."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming:
            return handler
        method: str = handler_call_details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self.wrap_unary(method, cast("Unary", handler.unary_unary)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self.wrap_stream(method, cast("Streaming", handler.unary_stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def wrap_unary(self, method: str, behavior: Unary) -> Unary:
        raise NotImplementedError

    def wrap_stream(self, method: str, behavior: Streaming) -> Streaming:
        raise NotImplementedError


class MetricsInterceptor(_Wrapping):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def _record(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any], started: float, failed: bool
    ) -> None:
        service, name = _split(method)
        code = context.code()
        if code is None:
            code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
        label = code.name if isinstance(code, grpc.StatusCode) else str(code)
        self._metrics.rpc_total.labels(service, name, label).inc()
        self._metrics.rpc_duration.labels(service, name).observe(time.perf_counter() - started)

    def wrap_unary(self, method: str, behavior: Unary) -> Unary:
        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started, failed = time.perf_counter(), True
            try:
                result = await behavior(request, context)
                failed = False
                return result
            finally:
                self._record(method, context, started, failed)

        return run

    def wrap_stream(self, method: str, behavior: Streaming) -> Streaming:
        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started, failed = time.perf_counter(), True
            try:
                async for item in behavior(request, context):
                    yield item
                failed = False
            finally:
                self._record(method, context, started, failed)

        return run


class ContextInterceptor(_Wrapping):
    """Records the request id and the inbound deadline for the handler and its outbound calls."""

    def _enter(
        self, context: grpc.aio.ServicerContext[Any, Any]
    ) -> tuple[contextvars.Token[str], float | None]:
        incoming = dict(context.invocation_metadata() or ())
        request_id = str(incoming.get(REQUEST_ID_KEY) or uuid.uuid4().hex)
        token = _request_id.set(request_id)
        left = context.time_remaining()
        # grpc reports a huge number (not None) when the caller set no deadline.
        return token, left if left is not None and left < 10**8 else None

    def wrap_unary(self, method: str, behavior: Unary) -> Unary:
        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            token, left = self._enter(context)
            try:
                with deadlines.deadline(left):
                    return await behavior(request, context)
            finally:
                _request_id.reset(token)

        return run

    def wrap_stream(self, method: str, behavior: Streaming) -> Streaming:
        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            token, left = self._enter(context)
            try:
                with deadlines.deadline(left):
                    async for item in behavior(request, context):
                        yield item
            finally:
                _request_id.reset(token)

        return run


class ErrorInterceptor(_Wrapping):
    """Domain errors become their status; anything unexpected becomes INTERNAL with a generic message."""

    def __init__(self, domain: str) -> None:
        self._domain = domain

    async def _abort(self, method: str, context: grpc.aio.ServicerContext[Any, Any], exc: Exception) -> None:
        if isinstance(exc, HivemeshError):
            status = to_status(exc, self._domain)
            if exc.code in (Code.INTERNAL, Code.UNAVAILABLE, Code.DATA_LOSS):  # worth a line in the log
                _log.warning("%s failed: %s (%s)", method, exc.message, exc.reason)
        else:
            trace_id = current_trace_id()
            _log.error("%s raised an unexpected error [trace=%s]", method, trace_id, exc_info=exc)
            status = internal_status(f"internal error (trace id {trace_id or 'none'})")
        await context.abort(grpc_code(Code(status.code)), status.message, trailing_metadata(status))

    def wrap_unary(self, method: str, behavior: Unary) -> Unary:
        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._abort(method, context, exc)
                raise  # unreachable: abort raises

        return run

    def wrap_stream(self, method: str, behavior: Streaming) -> Streaming:
        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            try:
                async for item in behavior(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._abort(method, context, exc)
                raise

        return run


def validate(request: Message) -> None:
    """Raise InvalidArgument naming every violated field of ``request``."""
    violations = protovalidate.collect_violations(request)
    if not violations:
        return
    found = []
    for violation in violations:
        elements = violation.proto.field.elements if violation.proto.field is not None else []
        path = ".".join(e.field_name for e in elements) or "(message)"
        found.append(FieldViolation(path, violation.proto.message or violation.proto.rule_id))
    text = "; ".join(f"{v.field}: {v.description}" for v in found)
    raise InvalidArgument(f"invalid request: {text}", violations=found, metadata={"field": found[0].field})


class ValidationInterceptor(_Wrapping):
    def wrap_unary(self, method: str, behavior: Unary) -> Unary:
        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            validate(request)
            return await behavior(request, context)

        return run

    def wrap_stream(self, method: str, behavior: Streaming) -> Streaming:
        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            validate(request)
            async for item in behavior(request, context):
                yield item

        return run


def server_interceptors(domain: str, metrics: Metrics) -> Sequence[_ServerInterceptor]:
    """The server interceptor stack, outermost first."""
    return [
        aio_server_interceptor(),  # type: ignore[no-untyped-call]  # the library is untyped
        MetricsInterceptor(metrics),
        ContextInterceptor(),
        ErrorInterceptor(domain),
        ValidationInterceptor(),
    ]


class _OutboundContext(
    _UnaryUnaryClient,
    _UnaryStreamClient,
):
    """Bounds every outbound call by the inbound deadline and forwards the request id."""

    def __init__(self, default_timeout: float, margin: float) -> None:
        self._default = default_timeout
        self._margin = margin

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        timeout = deadlines.outbound_timeout(details.timeout, default=self._default, margin=self._margin)
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        request_id = _request_id.get()
        if request_id and REQUEST_ID_KEY not in metadata:
            metadata.add(REQUEST_ID_KEY, request_id)
        return grpc.aio.ClientCallDetails(
            details.method, timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


def client_interceptors(default_timeout: float, margin: float) -> list[Any]:
    """The client interceptor stack, outermost first."""
    tracing: list[Any] = aio_client_interceptors()  # type: ignore[no-untyped-call]  # the library is untyped
    return [*tracing, _OutboundContext(default_timeout, margin)]
