"""Server bootstrap on grpc.aio: limits, keepalive, health, reflection, interceptors and a graceful
shutdown that drains in-flight calls.

A ``ServiceApp`` is what a service package builds: how to register its servicer plus the background
components (queue workers, stores) that live and die with it. ``MeshServer`` serves one app on its
own port, and to callers in the same process through ``local`` (the same handlers behind the same
interceptors, without the transport); ``run_until_signal`` serves several (``hivemesh up``) and
stops them all on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from hivemesh.mesh import release as releases
from hivemesh.mesh import tls as transport
from hivemesh.mesh.admission import ServerAdmission
from hivemesh.mesh.config import ServerConfig, TlsConfig
from hivemesh.mesh.contracts import CONTRACTS
from hivemesh.mesh.credentials import CredentialGuard
from hivemesh.mesh.health import Health
from hivemesh.mesh.interceptors import Screen, server_interceptors
from hivemesh.mesh.local_endpoint import LocalEndpoint
from hivemesh.mesh.metrics import Metrics

_log = logging.getLogger(__name__)

LIVENESS = "liveness"
READINESS = "readiness"


class Component(Protocol):
    """Something a service runs beside its servicer (workers, stores, pools)."""

    async def start(self) -> None: ...

    async def stop(self, grace_s: float) -> None: ...


@dataclass
class ServiceApp:
    """A service ready to serve: ``register`` adds its servicer to a server."""

    name: str
    register: Callable[[grpc.aio.Server], None]
    components: Sequence[Component] = field(default_factory=list)
    # The mesh credential check of an internal service (``credentials.guard_for``); None for the
    # gateway, which authenticates its callers itself.
    guard: CredentialGuard | None = None
    # Told the peer of each request that does not decode, and may refuse it (``interceptors.Screen``).
    screen: Screen | None = None
    # Called from outside the mesh: with TLS its listener asks callers for no client certificate
    # (they prove who they are with API keys or JWTs); every other listener requires one.
    public: bool = False
    # Fills the service's own fields of its release part (router, model, prompt, tool catalogue);
    # None: the service's answers depend on the build alone.
    describe: releases.Describe | None = None


def server_options(config: ServerConfig) -> list[tuple[str, object]]:
    keepalive = config.keepalive
    return [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.keepalive_time_ms", int(keepalive.time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(keepalive.timeout_s * 1000)),
        ("grpc.http2.min_ping_interval_without_data_ms", int(keepalive.min_ping_interval_s * 1000)),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.max_connection_age_ms", int(keepalive.max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(keepalive.max_connection_age_grace_s * 1000)),
        ("grpc.so_reuseport", 1 if config.reuse_port else 0),
    ]


class MeshServer:
    """One service on one port, with health and reflection; with ``tls``, TLS on that port."""

    def __init__(
        self,
        app: ServiceApp,
        config: ServerConfig,
        port: int,
        metrics: Metrics,
        *,
        tls: TlsConfig | None = None,
    ) -> None:
        self.app = app
        self._config = config
        self._requested_port = port
        self.port = 0
        # Read here, so a bad certificate stops the process before anything starts.
        self._credentials = (
            None if tls is None else transport.server_credentials(tls, require_client_auth=not app.public)
        )
        self.contract = CONTRACTS[app.name]
        self.health = Health(
            lambda: releases.runtime_headers(releases.part(app.name, config.release, app.describe))
        )
        interceptors = server_interceptors(
            f"hivemesh.{app.name}", metrics, app.guard, app.screen, service=app.name
        )
        # The concurrency limit is the admission stage's, not grpc.aio's (``maximum_concurrent_rpcs``
        # would refuse health checks too, and without RetryInfo); it runs before the stack.
        admission = ServerAdmission(f"hivemesh.{app.name}", config.max_concurrent_rpcs)
        self._server = grpc.aio.server(
            interceptors=[admission, *interceptors], options=server_options(config)
        )
        # The same interceptor instances serve both doors, so metrics and errors cannot drift apart.
        self.local = LocalEndpoint(app.name, interceptors, max_concurrent_rpcs=config.max_concurrent_rpcs)
        server = self.local.registering(self._server)
        app.register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        releases.register(server, app.name, config.release, app.describe)
        reflection.enable_server_reflection(
            [
                self.contract.full_name,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                releases.SERVICE_NAME,
                reflection.SERVICE_NAME,
            ],
            server,
        )
        self._stopped = False

    @property
    def health_names(self) -> list[str]:
        """The names Health answers for: overall, liveness, readiness and the service itself."""
        return ["", LIVENESS, READINESS, self.contract.full_name]

    async def start(self) -> int:
        for component in self.app.components:
            await component.start()
        address = f"{self._config.host}:{self._requested_port}"
        if self._credentials is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, self._credentials)
        if self.port == 0:
            raise OSError(f"{self.app.name}: cannot bind {address}")
        await self._server.start()
        self.local.open()
        for name in self.health_names:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        _log.info(
            "%s serving %s on %s:%d%s",
            self.app.name,
            self.contract.full_name,
            self._config.host,
            self.port,
            "" if self._credentials is None else " with TLS",
        )
        return self.port

    async def stop(self, grace_s: float | None = None) -> None:
        """Readiness goes NOT_SERVING, then (after the shutdown delay) new calls are refused and
        in-flight calls get ``grace_s`` to finish; components stop within the same grace."""
        if self._stopped:
            return
        self._stopped = True
        grace = self._config.grace_period_s if grace_s is None else grace_s
        for name in ("", READINESS, self.contract.full_name):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._config.shutdown_delay_s > 0:
            await asyncio.sleep(self._config.shutdown_delay_s)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.gather(self._server.stop(grace), self.local.close(grace))
        await self.health.enter_graceful_shutdown()
        # Components (workers, then the stores they use) stop after the last call has drained,
        # in reverse order of start, sharing what is left of the grace period.
        for component in reversed(self.app.components):
            left = max(0.5, grace - (loop.time() - started))
            try:
                # Cutting a store's close short would orphan its connections, so the hard limit is
                # generous; components keep to ``left`` themselves.
                await asyncio.wait_for(component.stop(left), timeout=left + 10.0)
            except TimeoutError:
                _log.warning(
                    "%s: %s did not stop within the grace period", self.app.name, type(component).__name__
                )
            except Exception as exc:
                _log.warning(
                    "%s: %s failed to stop cleanly: %s", self.app.name, type(component).__name__, exc
                )

    async def wait(self) -> None:
        await self._server.wait_for_termination()


class Serving(Protocol):
    """A server ``run_until_signal`` starts and stops: a MeshServer, or the edge's HTTP server."""

    # The port bound (once started).
    port: int

    async def start(self) -> int: ...

    async def stop(self, grace_s: float | None = None) -> None: ...


async def run_until_signal(
    servers: Sequence[Serving], grace_s: float, on_started: Callable[[], None] | None = None
) -> None:
    """Start the servers, serve until SIGTERM or SIGINT, then drain and stop them all."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started: list[Serving] = []
    try:
        for server in servers:
            await server.start()
            started.append(server)
        if on_started is not None:
            on_started()
        await stop.wait()
        _log.info("shutting down: draining in-flight calls for up to %.1fs", grace_s)
    finally:
        await asyncio.gather(*(s.stop(grace_s) for s in started))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
