"""Server-wide admission: at most ``HIVEMESH_MAX_CONCURRENT_RPCS`` calls at once on the gRPC door,
and Health always answered.

grpc.aio's own limit (``maximum_concurrent_rpcs``) refuses every call once it is full, health checks
included, with a bare RESOURCE_EXHAUSTED: a busy server then looks dead to its readiness probe, and
its callers get no hint of when to come back. This stage takes its place, in front of the
interceptor stack:

- Health ``Check`` is never counted and never refused;
- Health ``Watch`` and reflection streams have a budget of their own (``SIDE_STREAMS``): they never
  wait for ordinary calls, and cannot take their slots either;
- every other call holds one of ``limit`` slots to its end (the end of its stream, its
  cancellation, its deadline or its client's disconnection) and is refused beyond with
  RESOURCE_EXHAUSTED, RetryInfo and ErrorInfo ``SERVER_BUSY``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias, cast

import grpc

from hivemesh.mesh.bulkhead import RefusingBulkhead
from hivemesh.mesh.errors import Code, ResourceExhausted
from hivemesh.mesh.interceptors import Continuation, Handler
from hivemesh.mesh.status import grpc_code, to_status, trailing_metadata

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# Health Watch, and reflection under either of its package names.
SIDE_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# Open Health Watch and reflection streams one server keeps at once (probes use Check).
SIDE_STREAMS = 64
# What a refused caller is told to wait: calls end in milliseconds; a slot is soon free.
RETRY_AFTER_S = 1.0
REASON = "SERVER_BUSY"

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
_Unary: TypeAlias = Callable[[Any, Context], Awaitable[Any]]
_Streaming: TypeAlias = Callable[[Any, Context], AsyncIterator[Any]]

if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # the grpc classes are not generic at run time
    _ServerInterceptor = grpc.aio.ServerInterceptor


class _Gate:
    """A bulkhead and the words a refused caller reads."""

    def __init__(self, limit: int, what: str) -> None:
        self.slots = RefusingBulkhead(limit)
        self.what = what


class ServerAdmission(_ServerInterceptor):
    def __init__(self, domain: str, limit: int, *, side_limit: int = SIDE_STREAMS) -> None:
        self._domain = domain
        self._calls = _Gate(limit, "concurrent calls")
        self._side = _Gate(side_limit, "open health-watch and reflection streams")

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method == HEALTH_CHECK:
            return handler
        gate = self._side if method.startswith(SIDE_PREFIXES) else self._calls
        # The handler below is built anew for every call (tracing wraps per call), so the wrapper is too.
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(gate, cast("_Unary", handler.unary_unary)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(gate, cast("_Streaming", handler.unary_stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(gate, cast("_Unary", handler.stream_unary)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(gate, cast("_Streaming", handler.stream_stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, gate: _Gate, behavior: _Unary) -> _Unary:
        async def run(request: Any, context: Context) -> Any:
            if not gate.slots.try_enter():
                await self._refuse(gate, context)
            try:
                return await behavior(request, context)
            finally:
                gate.slots.leave()

        return run

    def _streaming(self, gate: _Gate, behavior: _Streaming) -> _Streaming:
        async def run(request: Any, context: Context) -> AsyncIterator[Any]:
            if not gate.slots.try_enter():
                await self._refuse(gate, context)
            # Cancellation, a deadline and a client gone mid-stream all arrive here as an exception
            # at the handler's current await: the slot is given back on every way out.
            try:
                async for item in behavior(request, context):
                    yield item
            finally:
                gate.slots.leave()

        return run

    async def _refuse(self, gate: _Gate, context: Context) -> NoReturn:
        limit = gate.slots.limit
        error = ResourceExhausted(
            f"the server is at its limit of {limit} {gate.what}; try again shortly",
            retry_after_s=RETRY_AFTER_S,
            reason=REASON,
            metadata={"limit": str(limit)},
        )
        status = to_status(error, self._domain)
        await context.abort(grpc_code(Code(status.code)), status.message, trailing_metadata(status))
