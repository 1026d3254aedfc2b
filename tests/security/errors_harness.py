"""Real services on port 0, reached by an outside gRPC client or in-process, for the tests of the
errors a client can cause."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import cast

import grpc

from hivemesh.mesh.config import Settings
from hivemesh.mesh.credentials import acting_as
from tests.support import RunningMesh, mesh_minter, start_mesh

PATHS = ("grpc", "in-process")
# The tenant and user the tests' calls act for (the scope their requests name).
ACTING = ("t1", "ana")
DETAILS_KEY = "grpc-status-details-bin"


@dataclass
class Served:
    """Services of one mesh and the way this test reaches them."""

    mesh: RunningMesh
    path: str

    def channel(self, service: str) -> grpc.aio.Channel:
        """A plain gRPC client channel (the client's default limits) acting for ACTING, or the
        in-process channel a co-located service uses (acting for ACTING too: see ``serve``)."""
        if self.path == "grpc":
            return self.mesh.client(service, ACTING)
        return self.mesh.channels.channel(service)

    def raw(self, service: str, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
        """A unary method taking and returning bytes as they are (no serializers)."""
        full = f"/hivemesh.{service}.v1.{service.capitalize()}Service/{method}"
        return self.channel(service).unary_unary(full, request_serializer=None, response_deserializer=None)

    async def counted(self, service: str, method: str, code: str, expected: float) -> float:
        """Calls of ``method`` counted under ``code``, once ``expected`` of them are or a second has
        passed (a call is counted after its caller has been answered)."""
        labels = {
            "grpc_service": f"hivemesh.{service}.v1.{service.capitalize()}Service",
            "grpc_method": method,
            "grpc_code": code,
            "release": self.mesh.metrics.release,
        }
        count = 0.0
        for _ in range(100):
            count = sum(
                self.mesh.metrics.registry.get_sample_value(
                    "grpc_server_handled_total", {"grpc_type": kind, **labels}
                )
                or 0.0
                for kind in ("unary", "server_stream")
            )
            if count >= expected:
                break
            await asyncio.sleep(0.01)
        return count


@contextlib.asynccontextmanager
async def serve(settings: Settings, services: Sequence[str], path: str) -> AsyncIterator[Served]:
    mesh = await start_mesh(replace(settings, local_calls=path == "in-process"), services)
    try:
        # The test's in-process calls carry the credential as a service's own calls for a task do.
        with acting_as(mesh_minter(mesh.settings).mint(*ACTING)):
            yield Served(mesh, path)
    finally:
        await mesh.stop()


def trailers(error: grpc.aio.AioRpcError) -> list[tuple[str, str | bytes]]:
    # grpc.aio.Metadata iterates as (key, value) pairs; its stubs say otherwise.
    return [
        (str(key), value)
        for key, value in cast("Iterable[tuple[str, str | bytes]]", error.trailing_metadata() or ())
    ]


def trailer_bytes(error: grpc.aio.AioRpcError) -> int:
    """What the status of a failed call weighs: trailing metadata plus the status message."""
    size = len((error.details() or "").encode())
    for key, value in trailers(error):
        size += len(key) + len(value if isinstance(value, bytes) else value.encode())
    return size


def details_bytes(error: grpc.aio.AioRpcError) -> int:
    return sum(len(v) for k, v in trailers(error) if k == DETAILS_KEY and isinstance(v, bytes))
