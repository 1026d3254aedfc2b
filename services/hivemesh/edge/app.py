"""The edge: one stateless HTTP process in front of the gateway, serving the front doors
(``hivemesh serve edge``, and started by ``hivemesh up``).

- ``/v1/chat/completions``, ``/v1/models``: the OpenAI-compatible door (chat.py);
- ``/mcp``: the MCP door over streamable HTTP (mcp_door.py; with ``hivemesh[edge]`` installed);
- ``/console/``: the web console (hivemesh.console);
- ``/v1/traces``: with ``HIVEMESH_CONSOLE_OTLP=on``, the console's OTLP/HTTP trace receiver
  (hivemesh.console.receiver), whose spans, kept in memory, feed the console's waterfall;
- ``/healthz``: liveness (the process answers); ``/readyz``: readiness (the gateway answers its
  health check, and the edge is not shutting down).

Every request is an HTTP SERVER span (tracing.py) whose children are the gateway calls made for it
(spans received on ``/v1/traces`` excepted).

Apart from the spans the receiver keeps, the edge keeps nothing between requests: every door turns
a request into calls of the gateway with the caller's own credentials, so it scales and fails like
any stateless front end. Every request body is bounded (``HIVEMESH_EDGE_MAX_BODY_BYTES``). Bound to
a loopback address (a laptop), the edge answers only requests addressed to localhost, so a web page
cannot reach it through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import math
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import grpc
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from hivemesh.console.app import CONSOLE_PATH, console_app
from hivemesh.console.receiver import OTLP_PATH, OtlpReceiver, SpanStore, otlp_available
from hivemesh.console.services import ServiceMap
from hivemesh.console.traces import SpanFile
from hivemesh.edge.body import BodyLimit
from hivemesh.edge.chat import ChatDoor, error_response
from hivemesh.edge.config import EdgeConfig
from hivemesh.edge.errors import HttpError
from hivemesh.edge.gateway import GatewayLink
from hivemesh.edge.tracing import HttpSpans
from hivemesh.mesh import tls as transport
from hivemesh.mesh.config import ConfigError, Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import Serving

_log = logging.getLogger(__name__)
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
# Addresses that listen everywhere: the Agent Card then names localhost unless told otherwise.
_ANY = ("0.0.0.0", "::", "[::]")  # noqa: S104 - compared with, not bound
# Where the A2A door is mounted: its Agent Card is at /a2a/.well-known/agent-card.json.
A2A_PATH = "/a2a"
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
MCP_PATH = "/mcp"
# A path of each door, as clients call them (the deployment routes each to the edge).
DOOR_PATHS = (CHAT_PATH, MODELS_PATH, MCP_PATH, f"{A2A_PATH}/", f"{A2A_PATH}/.well-known/agent-card.json")
_ERROR_TYPES = {404: "not_found_error", 405: "invalid_request_error"}


class Health:
    def __init__(self, gateway: GatewayLink) -> None:
        self._gateway = gateway
        self.stopping = False

    async def live(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        if self.stopping:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        if not await self._gateway.ready():
            return JSONResponse(
                {"status": f"the gateway at {self._gateway.address} is not ready"}, status_code=503
            )
        return JSONResponse({"status": "ready"})


class Edge:
    """The ASGI app of the edge (``app``) and what its server needs to know of it."""

    def __init__(
        self,
        settings: Settings,
        config: EdgeConfig,
        *,
        gateway_address: str | None = None,
        service_addresses: Mapping[str, str] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """``service_addresses``: where the console checks each service's health (the settings'
        addresses by default); ``metrics``: the RPC counters of the services of this process, for
        the console's service map (None when they run elsewhere)."""
        self.config = config
        self.gateway = GatewayLink(gateway_address or settings.addresses["gateway"], settings, config)
        addresses = dict(service_addresses or settings.addresses)
        self.services = ServiceMap(addresses, settings.tls, metrics, config.tool_metrics_urls)
        self.health = Health(self.gateway)
        chat = ChatDoor(self.gateway, config.model)
        routes: list[BaseRoute] = [
            Route(LIVENESS_PATH, self.health.live, methods=["GET"]),
            Route(READINESS_PATH, self.health.ready, methods=["GET"]),
            Route(MODELS_PATH, chat.models, methods=["GET"]),
            Route(MODELS_PATH + "/{model:path}", chat.model, methods=["GET"]),
            Route(CHAT_PATH, chat.completions, methods=["POST"]),
        ]
        mcp = _mcp_http(self.gateway, config)
        self.mcp = mcp is not None
        if mcp is not None:
            routes.append(Route(MCP_PATH, mcp))
        # The A2A door is built when the server starts (``open_a2a``): its Agent Card names the
        # addresses it is reached at, and the gateway of this process may have bound its port only then.
        self.a2a = a2a_available()
        self.public_url = config.public_url
        self._settings = settings
        self.tls = settings.tls
        self._a2a_door: Any = None
        if self.a2a:
            routes.append(Mount(A2A_PATH, app=self._a2a_door_app))
        routes.append(Route(CONSOLE_PATH, _to_console, methods=["GET"]))
        spans = None if settings.trace_file is None else SpanFile(settings.trace_file)
        # The console's OTLP receiver: spans the services export, kept in memory for the waterfall.
        self.received: SpanStore | None = None
        if config.console_otlp:
            if not otlp_available():
                raise ConfigError(
                    "HIVEMESH_CONSOLE_OTLP=on needs the otlp extra (pip install 'hivemesh[otlp]')"
                )
            self.received = SpanStore()
            receiver = OtlpReceiver(self.received, config.max_body_bytes, config.console_otlp_token)
            routes.append(Route(OTLP_PATH, receiver.traces, methods=["POST"]))
        routes.append(Mount(CONSOLE_PATH, app=console_app(self.gateway, self.services, spans, self.received)))
        middleware = [Middleware(BodyLimit, max_bytes=config.max_body_bytes)]
        if settings.server.host in _LOOPBACK:
            middleware.insert(
                0, Middleware(TrustedHostMiddleware, allowed_hosts=["localhost", "127.0.0.1", "[::1]"])
            )
        # Outermost: every request has its span, a refused one included.
        middleware.insert(0, Middleware(HttpSpans))

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            await self.gateway.open()
            try:
                async with mcp.manager.run() if mcp is not None else contextlib.nullcontext():
                    yield
            finally:
                await self.services.close()
                await self.gateway.close()

        self.app = Starlette(
            routes=routes,
            middleware=middleware,
            lifespan=lifespan,
            exception_handlers={HTTPException: _http_error},
        )

    async def open_a2a(self, grpc_url: str | None = None) -> Any:
        """Build and start the A2A door (None without a2a-sdk); ``grpc_url``: where its gRPC
        binding is served, for the card. Its push registrations live in the SQL store every
        replica shares (``HIVEMESH_DATABASE_URL``, else SQLite in the data directory)."""
        if not self.a2a:
            return None
        from hivemesh.a2a.app import A2ADoor  # noqa: PLC0415 - a2a-sdk is an optional extra
        from hivemesh.a2a.push_store import PushStore  # noqa: PLC0415

        door = A2ADoor(
            self.gateway.address,
            f"{self.public_url.rstrip('/')}{A2A_PATH}",
            push_store=PushStore.for_settings(self._settings),
            grpc_url=grpc_url,
            tls=self._settings.tls,
        )
        await door.start()
        self._a2a_door = door
        return door

    async def close_a2a(self) -> None:
        door, self._a2a_door = self._a2a_door, None
        if door is not None:
            await door.close()

    async def _a2a_door_app(self, scope: Any, receive: Any, send: Any) -> None:
        door = self._a2a_door
        if door is None:  # only before the server has started, or after it stopped
            await JSONResponse({"status": "not serving"}, status_code=503)(scope, receive, send)
            return
        await door.app(scope, receive, send)


async def _to_console(request: Request) -> Response:
    return RedirectResponse(f"{CONSOLE_PATH}/", status_code=308)


def a2a_available() -> bool:
    """Whether the A2A door can be served (the a2a-sdk package of ``hivemesh[edge]`` is installed)."""
    try:
        return importlib.util.find_spec("a2a") is not None
    except ImportError:
        return False


def mcp_available() -> bool:
    """Whether the MCP door can be served (the mcp package of ``hivemesh[edge]`` is installed)."""
    try:
        return importlib.util.find_spec("mcp") is not None
    except ImportError:
        return False


def _mcp_http(gateway: GatewayLink, config: EdgeConfig) -> Any:
    """The MCP door's ASGI app, or None when the mcp package is missing."""
    if not mcp_available():
        return None
    from hivemesh.edge.mcp_door import McpHttp  # noqa: PLC0415 - mcp is an optional extra

    return McpHttp(gateway, config.max_body_bytes)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing's refusals (no such path, wrong method) in the OpenAI error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    error = HttpError(
        status, f"{detail}: {request.method} {request.url.path}", _ERROR_TYPES.get(status, "server_error")
    )
    return error_response(error)


def listening_socket(host: str) -> socket.socket:
    """An unbound TCP socket for the edge to listen on. It names its protocol (IPPROTO_TCP): the
    connections it accepts inherit it, and asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    sockets that name it. Without, a response written in two pieces on a kept-alive connection
    waited for the client's delayed ACK: some 40 ms per request."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The process's own handler (run_until_signal) stops every server, the edge among them.
        yield


class EdgeServer:
    """The edge's HTTP server, started and stopped beside the gRPC servers (``run_until_signal``)."""

    def __init__(
        self,
        edge: Edge,
        host: str,
        port: int,
        *,
        grace_s: float,
        shutdown_delay_s: float = 0.0,
        local_gateway: Serving | None = None,
        local_services: Mapping[str, Serving] | None = None,
    ) -> None:
        self._edge = edge
        # The gateway of this same process (hivemesh up), started before the edge: its port is
        # known only then (it may have been 0). The same holds for the services whose health the
        # console shows.
        self._local_gateway = local_gateway
        self._local_services = dict(local_services or {})
        self._host = host
        self.port = port
        self._grace = grace_s
        self._shutdown_delay = shutdown_delay_s
        self._server = _Uvicorn(
            uvicorn.Config(
                edge.app,
                host=host,
                port=port,
                lifespan="on",
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=max(1, math.ceil(grace_s)),
            )
        )
        self._task: asyncio.Task[None] | None = None
        self._a2a_grpc: grpc.aio.Server | None = None
        # The port A2A's gRPC binding is served on (None: not served).
        self.a2a_grpc_port: int | None = None

    async def start(self) -> int:
        if self._local_gateway is not None:
            gateway = self._edge.gateway
            gateway.address = f"{gateway.address.rsplit(':', 1)[0]}:{self._local_gateway.port}"
        for name, server in self._local_services.items():
            self._edge.services.listening_on(name, server.port)
        sock = listening_socket(self._host)
        try:
            sock.bind((self._host.strip("[]"), self.port))
        except OSError as exc:
            sock.close()
            raise OSError(
                f"edge: cannot bind {self._host}:{self.port}: {exc.strerror or exc} "
                "(set HIVEMESH_EDGE_PORT to a free port, or to off)"
            ) from exc
        self.port = sock.getsockname()[1]
        host = "localhost" if self._host in _LOOPBACK or self._host in _ANY else self._host
        if not self._edge.public_url:
            self._edge.public_url = f"http://{host}:{self.port}"
        try:
            await self._start_a2a(host)
        except BaseException:
            sock.close()
            raise
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                await self._task
                raise OSError(f"edge: the HTTP server on {self._host}:{self.port} stopped while starting")
            await asyncio.sleep(0.01)
        _log.info(
            "edge serving HTTP on %s:%d (console %s/, OpenAI /v1/chat/completions%s%s)",
            self._host,
            self.port,
            CONSOLE_PATH,
            ", MCP /mcp" if self._edge.mcp else "",
            f", A2A {A2A_PATH}" if self._edge.a2a else "",
        )
        if self.a2a_grpc_port is not None:
            _log.info("edge serving A2A over gRPC on %s:%d", self._host, self.a2a_grpc_port)
        return self.port

    async def _start_a2a(self, card_host: str) -> None:
        """The A2A door, and its gRPC binding on its own port when one is configured."""
        config = self._edge.config
        if not self._edge.a2a or config.a2a_grpc_port is None:
            await self._edge.open_a2a()
            return
        from hivemesh.a2a.app import add_a2a_servicer  # noqa: PLC0415 - a2a-sdk is an optional extra

        server = grpc.aio.server()
        address = f"{self._host}:{config.a2a_grpc_port}"
        tls = self._edge.tls
        try:
            # With HIVEMESH_TLS_*, as the gateway does: TLS, no client certificate required.
            self.a2a_grpc_port = (
                server.add_insecure_port(address)
                if tls is None
                else server.add_secure_port(
                    address, transport.server_credentials(tls, require_client_auth=False)
                )
            )
        except RuntimeError as exc:
            raise OSError(
                f"edge: cannot bind {self._host}:{config.a2a_grpc_port} for A2A over gRPC "
                "(set HIVEMESH_EDGE_A2A_GRPC_PORT to a free port, or to off)"
            ) from exc
        door = await self._edge.open_a2a(config.a2a_grpc_url or f"{card_host}:{self.a2a_grpc_port}")
        add_a2a_servicer(door.grpc_servicer(), server)
        await server.start()
        self._a2a_grpc = server

    async def stop(self, grace_s: float | None = None) -> None:
        """Readiness goes 503 (for the shutdown delay, so load balancers stop routing here), then
        the server stops taking requests and lets those in flight finish within the grace period."""
        self._edge.health.stopping = True
        if self._task is None:
            return
        if self._shutdown_delay > 0:
            await asyncio.sleep(self._shutdown_delay)
        grace = self._grace if grace_s is None else grace_s
        self._server.should_exit = True
        try:
            if self._a2a_grpc is not None:
                await self._a2a_grpc.stop(grace)
            await asyncio.wait_for(self._task, timeout=grace + 10.0)
        finally:
            await self._edge.close_a2a()
