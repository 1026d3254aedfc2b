"""Server and client interceptors. ``server_interceptors`` and ``client_interceptors`` assemble them,
in order, in one place each.

Server, outermost first: tracing (OpenTelemetry, extracts W3C context from metadata) -> the call
pipeline: metrics (count, code, duration) -> context (request id, inbound deadline) -> errors (domain
error -> status with ErrorInfo; anything else -> INTERNAL, logged with the trace id) -> decoding
(bytes that are not a valid request -> INVALID_ARGUMENT naming the field) -> validation
(protovalidate -> INVALID_ARGUMENT with field paths) -> the servicer.

Client: tracing (injects W3C context) -> context (request id forwarded; timeout bounded by the
inbound deadline, a default when there is none), for unary and server-streaming calls alike; a
unary call is cancelled with its caller.

Both stacks run on every call, over gRPC and in-process (``local_endpoint``, ``local_channel``).
OpenTelemetry's tracing interceptors are there only in a process that records spans; elsewhere the
pipeline and the outbound context carry the W3C context themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import grpc
import protovalidate
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor

from hivemesh.mesh import deadlines, telemetry
from hivemesh.mesh.credentials import (
    CREDENTIAL_HEADER,
    CredentialGuard,
    begin_acting,
    current_credential,
    end_acting,
)
from hivemesh.mesh.errors import Code, FieldViolation, HivemeshError, InvalidArgument
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.sides import SIDE_HEADER, side_for
from hivemesh.mesh.status import grpc_code, internal_status, to_status, trailing_metadata
from hivemesh.mesh.telemetry import current_trace_id, recording
from hivemesh.mesh.wire import find_flaw

_log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("hivemesh_request_id", default="")
_T = TypeVar("_T")

Unary: TypeAlias = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
Streaming: TypeAlias = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]
BidiStreaming: TypeAlias = Callable[
    [AsyncIterator[Any], grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]
]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any]"]]
Deserializer: TypeAlias = Callable[[bytes], Any]

# Told the peer of a request that did not decode, before it is answered; may raise to refuse the
# peer instead (the gateway's budget of failed authentications: unauthenticated garbage costs what
# a call without credentials costs).
Screen: TypeAlias = Callable[[str], None]

# The ErrorInfo reason of a request whose bytes are not a valid message of its method's type.
UNDECODABLE_REQUEST = "UNDECODABLE_REQUEST"


def current_request_id() -> str:
    return _request_id.get()


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2) if method.count("/") == 2 else ("", "", method)
    return service, name


if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
    _UnaryUnaryClient = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStreamClient = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
    _UnaryUnaryCallBase = grpc.aio.UnaryUnaryCall[Any, Any]
else:  # the grpc classes are not generic at run time
    _ServerInterceptor = grpc.aio.ServerInterceptor
    _UnaryUnaryClient = grpc.aio.UnaryUnaryClientInterceptor
    _UnaryStreamClient = grpc.aio.UnaryStreamClientInterceptor
    _UnaryUnaryCallBase = grpc.aio.UnaryUnaryCall


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


class Undecodable:
    """What the pipeline's deserializer hands on in place of a request that does not decode: the
    handler never sees it, the pipeline answers with ``error`` (INVALID_ARGUMENT)."""

    __slots__ = ("error",)

    def __init__(self, error: InvalidArgument) -> None:
        self.error = error


def _undecodable_error(message_type: Descriptor | None, data: bytes) -> InvalidArgument:
    """The error for ``data`` that does not decode as ``message_type``: naming the field at fault
    when the bytes show one, the message type otherwise."""
    name = message_type.full_name if message_type is not None else "the request message"
    flaw = find_flaw(message_type, data) if message_type is not None else None
    if flaw is None or not flaw.field:
        return InvalidArgument(
            f"the request could not be decoded as {name}",
            reason=UNDECODABLE_REQUEST,
            metadata={"message_type": name},
        )
    return InvalidArgument(
        f"the request could not be decoded: {flaw.field}: {flaw.description}",
        violations=[FieldViolation(flaw.field, flaw.description)],
        reason=UNDECODABLE_REQUEST,
        metadata={"field": flaw.field, "message_type": name},
    )


def _tolerant(method: str, deserializer: Deserializer | None) -> Deserializer | None:
    """``deserializer`` that hands on an ``Undecodable`` instead of raising.

    Both transports decode before any handler runs: grpc.aio answers an exception there with
    UNKNOWN, the exception's text and a traceback in the log, before authentication or validation
    could say a word. Invalid UTF-8 in a string field and messages nested deeper than the runtime
    decodes are the usual causes; any failure to decode is the sender's bytes."""
    if deserializer is None:
        return None
    service, name = _split(method)
    try:
        message_type: Descriptor | None = (
            descriptor_pool.Default().FindMethodByName(f"{service}.{name}").input_type
        )
    except KeyError:
        message_type = None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # DecodeError, RecursionError...: all reported as INVALID_ARGUMENT
            return Undecodable(_undecodable_error(message_type, data))

    return deserialize


class CallPipeline(_ServerInterceptor):
    """Every hivemesh call passes these stages, outermost first:

    1. metrics: count by final code and time the call;
    2. context: the request id and the inbound deadline, for the handler and its outbound calls;
    3. errors: a domain error becomes its status with ErrorInfo; anything else becomes INTERNAL with
       a generic message, logged with the trace id;
    4. decoding: a request whose bytes did not decode (see ``_tolerant``) is INVALID_ARGUMENT,
       with one line in the log;
    5. validation: protovalidate, so a violation is INVALID_ARGUMENT naming each field and the
       servicer only ever sees valid input.

    The stages run in one wrapper per call rather than one interceptor each: on a small RPC every
    extra coroutine layer is a measurable share of the cost. The wrapped handler of each method is
    built once and reused. Request-streaming handlers (reflection's, none of hivemesh's) get the
    decoding stage only.

    With ``carry_trace`` (no tracing interceptor in front, see ``server_interceptors``) the pipeline
    makes the caller's W3C context the handler's current one, as the tracing interceptor does. With
    ``serving`` (a ``service.name``, given when spans are recorded) the spans the handler starts
    belong to that service.
    """

    def __init__(
        self,
        domain: str,
        metrics: Metrics,
        guard: CredentialGuard | None = None,
        screen: Screen | None = None,
        *,
        carry_trace: bool = False,
        serving: str = "",
    ) -> None:
        self._domain = domain
        self._serving = serving
        self._metrics = metrics
        self._guard = guard
        self._screen = screen
        self._carry_trace = carry_trace
        self._cache: dict[str, tuple[Handler, Handler]] = {}
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._cache[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Handler) -> Handler:
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, cast("Unary", handler.unary_unary)),
                request_deserializer=_tolerant(method, handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, cast("Streaming", handler.unary_stream)),
                request_deserializer=_tolerant(method, handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._decoded_stream(method, cast("BidiStreaming", handler.stream_stream)),
                request_deserializer=_tolerant(method, handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler

    def _decoded_stream(self, method: str, behavior: BidiStreaming) -> BidiStreaming:
        """A bidirectional stream whose requests are checked as they arrive: the first that does not
        decode ends the call with INVALID_ARGUMENT (the handler sees it as an abort)."""

        async def checked(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            async for request in requests:
                if isinstance(request, Undecodable):
                    _log.info("%s: %s [peer %s]", method, request.error.message, context.peer())
                    status = to_status(request.error, self._domain)
                    await context.abort(
                        grpc_code(Code(status.code)), status.message, trailing_metadata(status)
                    )
                yield request

        async def run(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            async for item in behavior(checked(requests, context), context):
                yield item

        return run

    def _unary(self, method: str, behavior: Unary) -> Unary:
        service, name = _split(method)

        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started, ending = time.perf_counter(), _FAILED
            token, left, incoming = _enter(context)
            traced = _carry_in(incoming) if self._carry_trace else None
            named = telemetry.serving_as(self._serving) if self._serving else None
            acting: contextvars.Token[str] | None = None
            try:
                with deadlines.deadline(left):
                    acting = _admit(method, request, context, incoming, self._guard, self._screen)
                    result = await behavior(request, context)
                ending = _OK
                return result
            except grpc.aio.AbortError:
                raise
            except asyncio.CancelledError:
                ending = _ended_early(context)
                raise
            except Exception as exc:
                await self._abort(method, context, exc)
                raise  # unreachable: abort raises
            finally:
                if acting is not None:
                    end_acting(acting)
                _request_id.reset(token)
                if named is not None:
                    telemetry.reset_serving(named)
                if traced is not None:
                    otel_context.detach(traced)
                self._record(_UNARY, service, name, context, started, ending)

        return run

    def _streaming(self, method: str, behavior: Streaming) -> Streaming:
        service, name = _split(method)

        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started, ending = time.perf_counter(), _FAILED
            token, left, incoming = _enter(context)
            traced = _carry_in(incoming) if self._carry_trace else None
            named = telemetry.serving_as(self._serving) if self._serving else None
            acting: contextvars.Token[str] | None = None
            closed_elsewhere = False
            try:
                with deadlines.deadline(left):
                    acting = _admit(method, request, context, incoming, self._guard, self._screen)
                    async for item in behavior(request, context):
                        yield item
                ending = _OK
            except grpc.aio.AbortError:
                raise
            except GeneratorExit:  # no longer read: closed by asyncio, maybe in another context
                ending, closed_elsewhere = _ended_early(context), True
                raise
            except asyncio.CancelledError:  # stopped
                ending = _ended_early(context)
                raise
            except Exception as exc:
                await self._abort(method, context, exc)
                raise
            finally:
                # Closed after its client went away, this runs in another context (see
                # ``deadlines.deadline``), where the request id, credential and trace were never set.
                with contextlib.suppress(ValueError):
                    if acting is not None:
                        end_acting(acting)
                with contextlib.suppress(ValueError):
                    _request_id.reset(token)
                with contextlib.suppress(ValueError):
                    if named is not None:
                        telemetry.reset_serving(named)
                if traced is not None and not closed_elsewhere:
                    otel_context.detach(traced)
                self._record(_SERVER_STREAM, service, name, context, started, ending)

        return run

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

    def _record(
        self,
        kind: str,
        service: str,
        name: str,
        context: grpc.aio.ServicerContext[Any, Any],
        started: float,
        ending: grpc.StatusCode,
    ) -> None:
        code = context.code() or ending
        label = code.name if isinstance(code, grpc.StatusCode) else str(code)
        # Label lookups take a lock and a dict walk each; the children are cached per method.
        key = (service, name, label)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self._metrics.rpc_total.labels(
                kind, service, name, label, self._metrics.release
            )
        counter.inc()
        timer = self._timers.get((service, name))
        if timer is None:
            timer = self._timers[(service, name)] = self._metrics.rpc_duration.labels(
                kind, service, name, self._metrics.release
            )
        # The call's trace id links its latency bucket to its trace, when spans are recorded (the
        # server span is still current here: the tracing interceptor is outside the pipeline).
        trace_id = current_trace_id() if self._serving else ""
        timer.observe(time.perf_counter() - started, {"trace_id": trace_id} if trace_id else None)


# The code a call is counted under when its handler set none: OK when it returned, UNKNOWN when it
# raised past the error stage; a cancelled handler was stopped by its caller's deadline or by its
# caller (grpc sets no code on the context in either case).
_OK, _FAILED = grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN
# The grpc_type label values of the RPC metrics (Prometheus' gRPC conventions).
_UNARY, _SERVER_STREAM = "unary", "server_stream"


def _admit(
    method: str,
    request: Any,
    context: grpc.aio.ServicerContext[Any, Any],
    incoming: dict[str, Any],
    guard: CredentialGuard | None,
    screen: Screen | None = None,
) -> contextvars.Token[str] | None:
    """Check the call's credential (when this service requires one), then raise InvalidArgument
    for a request that did not decode or is not valid (after ``screen`` has had its say about its
    sender). A credential checked here is the one the handler's outbound calls carry: the returned
    token undoes that."""
    grant = guard.admit(method, incoming) if guard is not None else None
    if isinstance(request, Undecodable):
        peer = context.peer()
        if screen is not None:
            screen(peer)
        # One line, no traceback: the cause is the sender's, and the sender may be hostile.
        _log.info("%s: %s [peer %s]", method, request.error.message, peer)
        raise request.error
    if grant is None:
        validate(request)
        return None
    credential, claims = grant
    guard.confine(request, claims)  # type: ignore[union-attr]  # a grant comes from a guard
    validate(request)
    return begin_acting(credential)


def _ended_early(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    left = context.time_remaining()
    expired = left is not None and left <= 0
    return grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED


def _enter(
    context: grpc.aio.ServicerContext[Any, Any],
) -> tuple[contextvars.Token[str], float | None, dict[str, Any]]:
    incoming = dict(context.invocation_metadata() or ())
    request_id = str(incoming.get(REQUEST_ID_KEY) or secrets.token_hex(16))
    token = _request_id.set(request_id)
    left = context.time_remaining()
    # grpc reports a huge number (not None) when the caller set no deadline.
    return token, left if left is not None and left < 10**8 else None, incoming


def _carry_in(incoming: dict[str, Any]) -> contextvars.Token[otel_context.Context] | None:
    """Make the W3C context of the call's metadata current (undone with the returned token)."""
    if not incoming:
        return None
    return otel_context.attach(propagate.extract(incoming))


def server_interceptors(
    domain: str,
    metrics: Metrics,
    guard: CredentialGuard | None = None,
    screen: Screen | None = None,
    *,
    service: str = "",
) -> Sequence[_ServerInterceptor]:
    """The server interceptor stack, outermost first: tracing (extracts the W3C context from the
    metadata, so the pipeline's logs and errors carry the trace id), then the call pipeline, which
    checks the mesh credential when ``guard`` is given and hands the senders of undecodable requests
    to ``screen``.

    A process that records no spans (``telemetry.recording``, decided by ``setup_tracing`` before
    any server is built) has no tracing interceptor: OpenTelemetry's would start and end a span
    that is never recorded, wrap the servicer context and set attributes on every call. The
    pipeline then carries the caller's context itself, so trace ids still reach logs and errors.
    When spans are recorded, those of ``service`` (``planner``...) carry its own ``service.name``."""
    provider = trace.get_tracer_provider()
    if not recording() or not isinstance(provider, telemetry.ServiceTracers):
        return [CallPipeline(domain, metrics, guard, screen, carry_trace=True)]
    name = telemetry.service_name(service) if service else ""
    return [
        aio_server_interceptor(  # type: ignore[no-untyped-call]  # the library is untyped
            tracer_provider=provider.provider(name) if name else None
        ),
        CallPipeline(domain, metrics, guard, screen, serving=name),
    ]


class _OutboundContext:
    """Bounds every outbound call by the inbound deadline and forwards the request id (and, with
    ``carry_trace``, the current W3C context)."""

    def __init__(self, default_timeout: float, margin: float, *, carry_trace: bool = False) -> None:
        self._default = default_timeout
        self._margin = margin
        self._carry_trace = carry_trace

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        timeout = deadlines.outbound_timeout(details.timeout, default=self._default, margin=self._margin)
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        request_id = _request_id.get()
        if request_id and REQUEST_ID_KEY not in metadata:
            metadata.add(REQUEST_ID_KEY, request_id)
        credential = current_credential()
        if credential and CREDENTIAL_HEADER not in metadata:
            metadata.add(CREDENTIAL_HEADER, credential)
        side = side_for(details.method)
        if side is not None and SIDE_HEADER not in metadata:
            metadata.add(SIDE_HEADER, side)
        if self._carry_trace:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            for key, value in carrier.items():
                metadata[key] = value
        return grpc.aio.ClientCallDetails(
            details.method, timeout, metadata, details.credentials, details.wait_for_ready
        )


# One object per kind of call: grpc.aio.Channel files an interceptor under the first kind it
# implements only, so one object for both would never see a streaming call.
class _OutboundUnary(_OutboundContext, _UnaryUnaryClient):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return _TiedToCaller(await continuation(self._details(client_call_details), request))


class _OutboundStream(_OutboundContext, _UnaryStreamClient):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class _TiedToCaller(_UnaryUnaryCallBase):
    """A unary call that is cancelled when whoever awaits it is.

    Tracing awaits the call's status inside the interceptor chain; when the caller is cancelled
    there, grpc.aio cancels only the chain's task and the RPC runs on to its end on the server.
    Awaiting through this wrapper cancels the RPC instead, so the handler stops with its caller.
    """

    def __init__(self, call: grpc.aio.UnaryUnaryCall[Any, Any]) -> None:
        self._call = call

    def __await__(self) -> Generator[Any, None, Any]:
        try:
            response = yield from self._call.__await__()
        except asyncio.CancelledError:
            self._call.cancel()
            raise
        return response

    async def _tied(self, awaitable: Awaitable[_T]) -> _T:
        try:
            return await awaitable
        except asyncio.CancelledError:
            self._call.cancel()
            raise

    async def code(self) -> grpc.StatusCode:
        return await self._tied(self._call.code())

    async def details(self) -> str:
        return await self._tied(self._call.details())

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return await self._tied(self._call.initial_metadata())

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return await self._tied(self._call.trailing_metadata())

    async def wait_for_connection(self) -> None:
        await self._tied(self._call.wait_for_connection())

    async def debug_error_string(self) -> str:
        return str(await self._tied(self._call.debug_error_string()))  # type: ignore[attr-defined]  # missing from the stubs

    def cancel(self) -> bool:
        return self._call.cancel()

    def cancelled(self) -> bool:
        return self._call.cancelled()

    def done(self) -> bool:
        return self._call.done()

    def time_remaining(self) -> float | None:
        return self._call.time_remaining()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._call.add_done_callback(lambda _: callback(self))


def client_interceptors(default_timeout: float, margin: float) -> list[Any]:
    """The client interceptor stack, outermost first. Without span recording (see
    ``server_interceptors``) the outbound stage injects the W3C context instead of OpenTelemetry's
    interceptors, which would start a span per call that nothing records."""
    if not recording():
        return [
            _OutboundUnary(default_timeout, margin, carry_trace=True),
            _OutboundStream(default_timeout, margin, carry_trace=True),
        ]
    tracing: list[Any] = aio_client_interceptors()  # type: ignore[no-untyped-call]  # the library is untyped
    return [*tracing, _OutboundUnary(default_timeout, margin), _OutboundStream(default_timeout, margin)]
