"""Carrying the current trace into the calls of a client's channel (``HivemeshClient(carry_trace=
True)``: the edge's calls of the gateway continue the trace of the HTTP request they answer).

When this process records spans, OpenTelemetry's client interceptors make a CLIENT span per call
(``rpc.*`` attributes) and send its context; otherwise the current W3C context alone is sent,
without a span that nothing would record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import propagate
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from hivemesh.mesh.telemetry import recording

if TYPE_CHECKING:
    _UnaryUnaryClient = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStreamClient = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
else:
    _UnaryUnaryClient = grpc.aio.UnaryUnaryClientInterceptor
    _UnaryStreamClient = grpc.aio.UnaryStreamClientInterceptor


def _with_context(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return details
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    for key, value in carrier.items():
        metadata[key] = value
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


# One object per kind of call: a channel files an interceptor under the first kind it implements.
class _CarryUnary(_UnaryUnaryClient):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_context(client_call_details), request)


class _CarryStream(_UnaryStreamClient):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_context(client_call_details), request)


def trace_interceptors() -> list[Any]:
    """The interceptors of a channel whose calls continue the caller's trace (decided when the
    channel is built: a process sets its tracing up before it opens its channels)."""
    if recording():
        found: list[Any] = aio_client_interceptors()  # type: ignore[no-untyped-call]  # the library is untyped
        return found
    return [_CarryUnary(), _CarryStream()]
