"""Serve a tool service built with custom parts (test tools, fakes) on port 0."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer, ServiceApp
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub
from tests.support import credentialed_channel

if TYPE_CHECKING:
    from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceAsyncStub


@contextlib.asynccontextmanager
async def serving(app: ServiceApp, settings: Settings) -> AsyncIterator[ToolServiceAsyncStub]:
    server = MeshServer(app, settings.server, 0, Metrics())
    await server.start()
    channel = credentialed_channel(f"127.0.0.1:{server.port}", settings)
    try:
        yield ToolServiceStub(channel)
    finally:
        await channel.close(None)
        await server.stop(1.0)


def channels(settings: Settings) -> ChannelFactory:
    return ChannelFactory(settings)
