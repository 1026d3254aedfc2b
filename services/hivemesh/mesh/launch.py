"""Builds services by name: the one place that knows which package implements which service."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol

from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import SERVICES, Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer, ServiceApp


class AppBuilder(Protocol):
    def __call__(self, settings: Settings, channels: ChannelFactory, metrics: Metrics) -> ServiceApp: ...


def builder(service: str) -> AppBuilder:
    """``hivemesh.<service>.app.build``: each service package exposes one."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"hivemesh.{service}.app")
    build: AppBuilder = module.build
    return build


# Leaves first, so every service finds its downstreams already listening (and, in one process,
# already registered for in-process calls when its callers are built).
START_ORDER = ("tool", "memory", "language", "planner", "gateway")


def leaves_first(services: Sequence[str]) -> list[str]:
    unknown = [s for s in services if s not in START_ORDER]
    if unknown:
        raise ValueError(f"unknown service {unknown[0]!r}; choose one of {', '.join(SERVICES)}")
    return [name for name in START_ORDER if name in services]


def build_servers(
    services: Sequence[str], settings: Settings, channels: ChannelFactory, metrics: Metrics
) -> list[MeshServer]:
    """The servers of ``services``, leaves first; each is reached in-process by the others."""
    servers = []
    for name in leaves_first(services):
        server = MeshServer(
            builder(name)(settings, channels, metrics),
            settings.server,
            settings.ports[name],
            metrics,
            tls=settings.tls,
        )
        channels.serve_locally(server.local)
        servers.append(server)
    return servers


class LocalMesh:
    """Several services in this process, started leaves first, calling each other in-process
    (``HIVEMESH_LOCAL_CALLS``). Ports may be 0: each service's real address is handed to the channel
    factory as soon as it is bound (tests, benchmarks, and the gRPC path when local calls are off)."""

    def __init__(self, settings: Settings, services: Sequence[str] = SERVICES) -> None:
        self.settings = settings
        self.metrics = Metrics(settings.server.release.label)
        self.channels = ChannelFactory(settings)
        self.servers: dict[str, MeshServer] = {}
        self._services = leaves_first(services)

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.servers[service].port}"

    async def start(self) -> None:
        for name in self._services:
            app = builder(name)(self.settings, self.channels, self.metrics)
            server = MeshServer(
                app, self.settings.server, self.settings.ports[name], self.metrics, tls=self.settings.tls
            )
            self.channels.serve_locally(server.local)
            await server.start()
            self.servers[name] = server
            self.channels.set_address(name, self.address(name))

    async def stop(self, grace_s: float = 1.0) -> None:
        for name in reversed(self._services):
            if name in self.servers:
                await self.servers.pop(name).stop(grace_s)
        await self.channels.close()
