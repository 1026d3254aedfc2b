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


def build_servers(
    services: Sequence[str], settings: Settings, channels: ChannelFactory, metrics: Metrics
) -> list[MeshServer]:
    return [
        MeshServer(builder(name)(settings, channels, metrics), settings.server, settings.ports[name], metrics)
        for name in services
    ]


# Leaves first, so every service finds its downstreams already listening.
START_ORDER = ("tool", "memory", "language", "planner", "gateway")


class LocalMesh:
    """Several services in this process, started leaves first. Ports may be 0: each service's
    real address is handed to the channel factory as soon as it is bound (tests, benchmarks)."""

    def __init__(self, settings: Settings, services: Sequence[str] = SERVICES) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.channels = ChannelFactory(settings)
        self.servers: dict[str, MeshServer] = {}
        self._services = [name for name in START_ORDER if name in services]

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.servers[service].port}"

    async def start(self) -> None:
        for name in self._services:
            app = builder(name)(self.settings, self.channels, self.metrics)
            server = MeshServer(app, self.settings.server, self.settings.ports[name], self.metrics)
            await server.start()
            self.servers[name] = server
            self.channels.set_address(name, self.address(name))

    async def stop(self, grace_s: float = 1.0) -> None:
        for name in reversed(self._services):
            if name in self.servers:
                await self.servers.pop(name).stop(grace_s)
        await self.channels.close()
