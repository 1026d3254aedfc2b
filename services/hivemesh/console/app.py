"""The web console: a page an operator opens in a browser to watch and act on the mesh's tasks,
dead letters and tools, and to see what memory holds. The edge mounts it at ``/console`` (so
``hivemesh up`` and ``hivemesh serve edge`` serve it), and it is as stateless as the edge's other
doors: the page's script calls the JSON API (api.py) with the operator's credential, and the API
calls the gateway with it.

The page is plain HTML, CSS and JavaScript shipped in ``static/`` (no framework, nothing fetched
from elsewhere at run time), so it works offline. Static files are served with a strict
Content-Security-Policy: scripts and styles only from the console itself.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from hivemesh.console.api import ConsoleApi
from hivemesh.console.receiver import SpanStore
from hivemesh.console.services import ServiceMap
from hivemesh.console.traces import SpanFile
from hivemesh.edge.gateway import GatewayLink

# Where the edge mounts the console.
CONSOLE_PATH = "/console"
STATIC = Path(__file__).parent / "static"
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


class _Secured:
    """Adds the console's security headers to every response of ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_secured(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                present = {name.lower() for name, _ in headers}
                headers.extend(
                    (name.encode(), value.encode())
                    for name, value in _SECURITY_HEADERS.items()
                    if name.encode() not in present
                )
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, send_secured)  # type: ignore[arg-type]


async def _page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")


def console_app(
    gateway: GatewayLink,
    services: ServiceMap,
    spans: SpanFile | None = None,
    received: SpanStore | None = None,
) -> ASGIApp:
    """The console's ASGI app (its page, its files and its API), to mount at ``CONSOLE_PATH``;
    ``spans``: the span file, ``received``: the spans the OTLP receiver keeps (either may be None)."""
    routes: list[BaseRoute] = [
        Route("/", _page, methods=["GET"]),
        *ConsoleApi(gateway, spans, received).routes(),
        Route("/api/services", services.health, methods=["GET"]),
        Route("/api/metrics", services.metrics, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    return _Secured(Starlette(routes=routes))
