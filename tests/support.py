"""Helpers for tests that run real servers on port 0."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc

from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import SERVICES, Settings
from hivemesh.mesh.launch import builder
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer
from hivemesh.mesh.status import StatusDetails, details_of

# Leaves first, so every service finds its downstreams already listening.
START_ORDER = ("tool", "memory", "language", "planner", "gateway")


def make_settings(data_dir: Path, **env: str) -> Settings:
    base = {"HIVEMESH_DATA_DIR": str(data_dir), "HIVEMESH_METRICS_PORT": "off", **env}
    settings = Settings.from_env(base)
    return replace(settings, ports=dict.fromkeys(SERVICES, 0))


@dataclass
class RunningMesh:
    settings: Settings
    channels: ChannelFactory
    servers: dict[str, MeshServer] = field(default_factory=dict)
    _clients: list[grpc.aio.Channel] = field(default_factory=list)

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.servers[service].port}"

    def client(self, service: str) -> grpc.aio.Channel:
        """A plain client channel (no interceptors), as an outside caller would have."""
        channel = grpc.aio.insecure_channel(self.address(service))
        self._clients.append(channel)
        return channel

    async def stop(self, grace_s: float = 1.0) -> None:
        for channel in self._clients:
            await channel.close(None)
        for name in reversed(START_ORDER):
            if name in self.servers:
                await self.servers[name].stop(grace_s)
        await self.channels.close()


async def start_mesh(settings: Settings, services: Sequence[str] = SERVICES) -> RunningMesh:
    metrics = Metrics()
    mesh = RunningMesh(settings, ChannelFactory(settings))
    for name in START_ORDER:
        if name not in services:
            continue
        server = MeshServer(builder(name)(settings, mesh.channels, metrics), settings.server, 0, metrics)
        await server.start()
        mesh.servers[name] = server
        mesh.channels.set_address(name, mesh.address(name))
    return mesh


async def rpc_error(awaitable: object) -> StatusDetails:
    """Await a call that must fail; return its decoded status."""
    try:
        await awaitable  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return details_of(exc)
    raise AssertionError("the call succeeded but was expected to fail")
