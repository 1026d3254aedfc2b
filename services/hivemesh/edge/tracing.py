"""A span per HTTP request the edge answers, with OpenTelemetry's HTTP server attributes.

The span continues the caller's trace (a W3C ``traceparent`` header), and the calls of the gateway
made while answering are its children (``GatewayLink`` carries the context into them), so one
trace runs from a browser or an OpenAI client through the edge into the mesh. Without span
recording no span is made, but a caller's ``traceparent`` is still carried into the gateway call.

Attributes: ``http.request.method``, ``http.route`` (the route's template, such as
``/console/api/tasks/{task_id}``, also in the span's name), ``url.path``, ``url.scheme``,
``http.response.status_code``, ``server.address``, ``server.port``, ``client.address``,
``network.protocol.version`` and ``user_agent.original``; ``error.type`` and an ERROR status
for a 5xx answer or an exception. ``url.query`` is left out: a search's text is the tenant's.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hivemesh.mesh.telemetry import recording, reset_serving, service_name, serving_as, tracer

_KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})


def _headers(scope: Scope) -> dict[str, str]:
    raw = scope.get("headers", ())
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}


def route_of(scope: Scope) -> str | None:
    """The template of the route that answered (Starlette leaves the innermost route and the
    path it was mounted under in the scope); None when no route matched."""
    route = scope.get("route")
    if route is None:
        return None
    mounted = str(scope.get("root_path", ""))
    if isinstance(route, Mount):
        # A mount answering as a whole (static files): its root path already names the mount.
        return f"{mounted}/{{path}}"
    path = getattr(route, "path", None)
    return f"{mounted}{path}" if isinstance(path, str) else None


def _start_attributes(scope: Scope, headers: dict[str, str]) -> dict[str, Any]:
    method = str(scope.get("method", "GET"))
    attributes: dict[str, Any] = {
        "http.request.method": method if method in _KNOWN_METHODS else "_OTHER",
        "url.path": str(scope.get("root_path", "")) + str(scope.get("path", "")),
        "url.scheme": str(scope.get("scheme", "http")),
        "network.protocol.version": str(scope.get("http_version", "1.1")),
    }
    if method not in _KNOWN_METHODS:
        attributes["http.request.method_original"] = method
    host = headers.get("host", "")
    if host:
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not name or not port.isdigit():
            name, port = host, ""
        attributes["server.address"] = name
        if port:
            attributes["server.port"] = int(port)
    elif scope.get("server"):
        attributes["server.address"], attributes["server.port"] = scope["server"][0], int(scope["server"][1])
    if "server.port" not in attributes and attributes.get("server.address"):
        attributes["server.port"] = 443 if attributes["url.scheme"] == "https" else 80
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    agent = headers.get("user-agent")
    if agent:
        attributes["user_agent.original"] = agent
    return attributes


_OTLP_PATH = "/v1/traces"


class HttpSpans:
    """ASGI middleware: each HTTP request answered inside a SERVER span of ``service``."""

    def __init__(self, app: ASGIApp, service: str = "edge") -> None:
        self._app = app
        self._service = service_name(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = _headers(scope)
        parent = propagate.extract(headers)
        # Spans received by the console's OTLP receiver make none of their own: each export would
        # otherwise be a span exported next time, without end.
        if not recording() or scope.get("path") == _OTLP_PATH:
            # Nothing records here, but the caller's trace still reaches the gateway.
            token = otel_context.attach(parent)
            try:
                await self._app(scope, receive, send)
            finally:
                otel_context.detach(token)
            return
        serving = serving_as(self._service)
        try:
            await self._traced(scope, receive, send, headers, parent)
        finally:
            reset_serving(serving)

    async def _traced(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        parent: otel_context.Context,
    ) -> None:
        attributes = _start_attributes(scope, headers)
        method = attributes["http.request.method"]
        method_name = "HTTP" if method == "_OTHER" else method
        span = tracer("hivemesh.edge").start_span(
            method_name, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )

        async def answered(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_attribute("error.type", str(status))
                    span.set_status(Status(StatusCode.ERROR))
            await send(message)

        with trace.use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=True):
            try:
                await self._app(scope, receive, answered)
            except Exception as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                raise
            finally:
                _name_by_route(span, method_name, scope)


def _name_by_route(span: trace.Span, method: str, scope: MutableMapping[str, Any]) -> None:
    route = route_of(scope)
    if route is not None:
        span.set_attribute("http.route", route)
        span.update_name(f"{method} {route}")
