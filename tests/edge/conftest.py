"""A real mesh (five services on port 0) with the edge in front of it on a free port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest

from hivemesh.edge.app import Edge, EdgeServer
from hivemesh.edge.config import EdgeConfig
from hivemesh.mesh.config import SERVICES, Settings
from tests.support import RunningMesh, start_mesh


@dataclass
class ServedEdge:
    mesh: RunningMesh
    url: str


@contextlib.asynccontextmanager
async def serve_edge(
    settings: Settings, config: EdgeConfig | None = None, services: Sequence[str] = SERVICES
) -> AsyncIterator[ServedEdge]:
    """The mesh (``services`` of it) and the edge; the gateway's authentication follows HIVEMESH_AUTH."""
    mesh = await start_mesh(settings, services)
    config = config or EdgeConfig(port=0, gateway_patience_s=0.5)
    # Where each service really listens (those of the mesh on ports picked at start).
    addresses = {s: mesh.address(s) if s in mesh.servers else settings.addresses[s] for s in SERVICES}
    front = Edge(
        settings,
        config,
        gateway_address=mesh.address("gateway"),
        service_addresses=addresses,
        metrics=mesh.metrics,
    )
    edge = EdgeServer(front, "127.0.0.1", 0, grace_s=1.0)
    try:
        port = await edge.start()
        try:
            yield ServedEdge(mesh, f"http://127.0.0.1:{port}")
        finally:
            await edge.stop(1.0)
    finally:
        await mesh.stop()


@pytest.fixture
async def edge(settings: Settings) -> AsyncIterator[ServedEdge]:
    async with serve_edge(settings) as served:
        yield served
