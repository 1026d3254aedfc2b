"""Replicas sharing one port (HIVEMESH_REUSE_PORT): a replica that stops gracefully finishes the
calls it holds, and its clients' next calls reach the other replica without failing, though the
method is not idempotent and the channel does not retry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest

from hivemesh.mesh.config import ServerConfig, Settings
from hivemesh.mesh.instance import successor_name
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer, ServiceApp, server_options
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1 import tool_service_pb2_grpc as tool_grpc

Context = grpc.aio.ServicerContext[object, object]


class NamedTool(tool_grpc.ToolServiceServicer):
    """InvokeTool answers with the replica's name; "slow" first waits half a second."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def InvokeTool(self, request: tool.InvokeToolRequest, context: Context) -> tool.InvokeToolResponse:
        if request.tool_name == "slow":
            await asyncio.sleep(0.5)
        return tool.InvokeToolResponse(display=self.name)


def replica(name: str, config: ServerConfig, port: int) -> MeshServer:
    servicer = NamedTool(name)  # type: ignore[abstract]  # a partial servicer: the rest answer UNIMPLEMENTED
    app = ServiceApp("tool", lambda s: tool_grpc.add_ToolServiceServicer_to_server(servicer, s))
    return MeshServer(app, config, port, Metrics())


@pytest.fixture
async def shared() -> AsyncIterator[dict[str, MeshServer]]:
    """Two replicas, "a" and "b", on one port."""
    config = ServerConfig(reuse_port=True)
    first = replica("a", config, 0)
    port = await first.start()
    second = replica("b", config, port)
    await second.start()
    try:
        yield {"a": first, "b": second}
    finally:
        await asyncio.gather(first.stop(0), second.stop(0))


def test_the_setting_turns_so_reuseport_on() -> None:
    settings = Settings.from_env({"HIVEMESH_REUSE_PORT": "true"})
    assert settings.server.reuse_port
    assert ("grpc.so_reuseport", 1) in server_options(settings.server)
    assert ("grpc.so_reuseport", 0) in server_options(Settings.from_env({}).server)


def test_a_shared_port_names_no_successor() -> None:
    # A replica starting on the port must not declare its live peer dead and free its claims.
    settings = Settings.from_env({"HIVEMESH_TOOL_PORT": "6000"})
    assert successor_name(settings, "tool", {}) is not None
    shared = replace(settings, server=replace(settings.server, reuse_port=True))
    assert successor_name(shared, "tool", {}) is None
    assert successor_name(shared, "tool", {"HIVEMESH_INSTANCE_NAME": "tool-7f9c"}) == "tool-7f9c/tool"


async def test_without_the_setting_a_second_replica_cannot_bind() -> None:
    first = replica("a", ServerConfig(), 0)
    port = await first.start()
    try:
        # grpcio reports a port it cannot bind as RuntimeError; MeshServer as OSError if it does not.
        with pytest.raises((RuntimeError, OSError)):
            await replica("b", ServerConfig(), port).start()
    finally:
        await first.stop(0)


async def test_a_stopping_replica_drains_and_its_clients_move_to_the_other(
    shared: dict[str, MeshServer],
) -> None:
    port = shared["a"].port
    no_retries = [("grpc.enable_retries", 0)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=no_retries) as channel:
        stub = tool_grpc.ToolServiceStub(channel)
        serving = (await stub.InvokeTool(tool.InvokeToolRequest(tool_name="who"))).display
        other = "b" if serving == "a" else "a"
        in_flight = asyncio.ensure_future(stub.InvokeTool(tool.InvokeToolRequest(tool_name="slow")))
        await asyncio.sleep(0.1)  # the slow call has reached the servicer
        stopping = asyncio.create_task(shared[serving].stop(5.0))
        await asyncio.sleep(0.05)  # the replica has begun to stop: GOAWAY sent, listener closed
        # While the replica drains, the channel's next calls go to the other one, none failing.
        during = []
        while not stopping.done():
            during.append((await stub.InvokeTool(tool.InvokeToolRequest(tool_name="who"))).display)
            await asyncio.sleep(0.02)
        assert (await in_flight).display == serving  # the call it held finished where it started
        assert during
        assert set(during) == {other}
        after = await stub.InvokeTool(tool.InvokeToolRequest(tool_name="who"))
        assert after.display == other
