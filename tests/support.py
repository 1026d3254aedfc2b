"""Helpers for tests that run real servers on port 0."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import grpc

from hivemesh.mesh.config import SERVICES, Settings
from hivemesh.mesh.launch import LocalMesh
from hivemesh.mesh.status import StatusDetails, details_of


def make_settings(data_dir: Path, **env: str) -> Settings:
    base = {"HIVEMESH_DATA_DIR": str(data_dir), "HIVEMESH_METRICS_PORT": "off", **env}
    settings = Settings.from_env(base)
    return replace(settings, ports=dict.fromkeys(SERVICES, 0))


class RunningMesh(LocalMesh):
    """A LocalMesh plus plain client channels (no interceptors), as an outside caller would have."""

    def __init__(self, settings: Settings, services: Sequence[str]) -> None:
        super().__init__(settings, services)
        self._clients: list[grpc.aio.Channel] = []

    def client(self, service: str) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(self.address(service))
        self._clients.append(channel)
        return channel

    async def stop(self, grace_s: float = 1.0) -> None:
        for channel in self._clients:
            await channel.close(None)
        await super().stop(grace_s)


async def start_mesh(settings: Settings, services: Sequence[str] = SERVICES) -> RunningMesh:
    mesh = RunningMesh(settings, services)
    await mesh.start()
    return mesh


async def rpc_error(awaitable: object) -> StatusDetails:
    """Await a call that must fail; return its decoded status."""
    try:
        await awaitable  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return details_of(exc)
    raise AssertionError("the call succeeded but was expected to fail")
