"""Outbound channels retry UNAVAILABLE for exactly the methods the protos declare idempotent, over
gRPC and in-process alike."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import grpc
import pytest

from hivemesh.mesh.channels import ChannelFactory, service_config
from hivemesh.mesh.config import Settings
from hivemesh.mesh.contracts import CONTRACTS, retryable_methods
from hivemesh.mesh.errors import Unavailable
from hivemesh.mesh.language_pools import language_pools
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer, ServiceApp
from hivemesh.tool.v1 import tool_service_pb2 as pb
from hivemesh.tool.v1 import tool_service_pb2_grpc as pb_grpc
from tests.mesh.fixtures import Context
from tests.support import rpc_error


class FlakyTool(pb_grpc.ToolServiceServicer):
    """Every method fails with UNAVAILABLE on its first call, then answers."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def _first_fails(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        if self.calls[method] == 1:
            raise Unavailable("warming up", reason="WARMING_UP")

    async def ListTools(self, request: pb.ListToolsRequest, context: Context) -> pb.ListToolsResponse:
        self._first_fails("ListTools")
        return pb.ListToolsResponse()

    async def InvokeTool(self, request: pb.InvokeToolRequest, context: Context) -> pb.InvokeToolResponse:
        self._first_fails("InvokeTool")
        return pb.InvokeToolResponse(display="ran")


@dataclass
class Flaky:
    servicer: FlakyTool
    server: MeshServer


@pytest.fixture
async def flaky(settings: Settings) -> AsyncIterator[Flaky]:
    servicer = FlakyTool()  # type: ignore[abstract]  # a partial servicer: the rest answer UNIMPLEMENTED
    server = MeshServer(
        ServiceApp("tool", lambda s: pb_grpc.add_ToolServiceServicer_to_server(servicer, s)),
        settings.server,
        0,
        Metrics(),
    )
    await server.start()
    try:
        yield Flaky(servicer, server)
    finally:
        await server.stop(0.5)


def test_the_retry_policy_names_exactly_the_idempotent_unary_methods() -> None:
    for name, contract in CONTRACTS.items():
        config = json.loads(service_config(name, retries=True))
        named = sorted(m["method"] for c in config["methodConfig"] for m in c["name"])
        assert named == retryable_methods(contract.descriptor)
        streaming = {m.name for m in contract.descriptor.methods if m.server_streaming or m.client_streaming}
        assert not streaming & set(named)
    assert json.loads(service_config("tool", retries=False))["methodConfig"] == []


def channels_to(server: MeshServer, settings: Settings, path: str) -> ChannelFactory:
    """A factory that reaches ``server`` over gRPC or in-process."""
    channels = ChannelFactory(replace(settings, local_calls=path == "in-process"))
    channels.set_address("tool", f"127.0.0.1:{server.port}")
    channels.serve_locally(server.local)
    assert channels.is_local("tool") is (path == "in-process")
    return channels


@pytest.mark.parametrize("path", ["in-process", "grpc"])
async def test_an_idempotent_call_is_retried_and_a_side_effecting_one_is_not(
    flaky: Flaky, settings: Settings, path: str
) -> None:
    channels = channels_to(flaky.server, settings, path)
    stub = pb_grpc.ToolServiceStub(channels.channel("tool"))
    try:
        await stub.ListTools(pb.ListToolsRequest())  # NO_SIDE_EFFECTS: retried, succeeds
        status = await rpc_error(stub.InvokeTool(pb.InvokeToolRequest(tool_name="x")))  # not idempotent
    finally:
        await channels.close()
    assert flaky.servicer.calls == {"ListTools": 2, "InvokeTool": 1}
    assert status.code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("path", ["in-process", "grpc"])
async def test_inside_a_mesh_the_sidecar_retries_instead(flaky: Flaky, settings: Settings, path: str) -> None:
    channels = channels_to(flaky.server, replace(settings, in_mesh=True), path)
    stub = pb_grpc.ToolServiceStub(channels.channel("tool"))
    try:
        status = await rpc_error(stub.ListTools(pb.ListToolsRequest()))
    finally:
        await channels.close()
    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert flaky.servicer.calls == {"ListTools": 1}


async def test_a_service_registered_after_its_channel_opened_is_refused(
    flaky: Flaky, settings: Settings
) -> None:
    channels = ChannelFactory(settings, {"tool": f"127.0.0.1:{flaky.server.port}"})
    channels.channel("tool")
    try:
        with pytest.raises(RuntimeError, match="build tool before its callers"):
            channels.serve_locally(flaky.server.local)
    finally:
        await channels.close()


async def test_a_channel_to_one_replica_is_its_own_and_the_service_address_is_the_service_channel(
    settings: Settings,
) -> None:
    factory = ChannelFactory(settings)
    try:
        own = factory.channel_to("language", "127.0.0.1:1")
        assert factory.channel_to("language", "127.0.0.1:1") is own
        assert own is not factory.channel("language")
        assert factory.channel_to("language", settings.addresses["language"]) is factory.channel("language")
    finally:
        await factory.close()


async def test_without_a_gpu_address_there_are_no_language_pools(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HIVEMESH_LANGUAGE_GPU_ADDR", raising=False)
    factory = ChannelFactory(settings)
    try:
        assert language_pools(settings, factory, Metrics(), "planner") is None
        monkeypatch.setenv("HIVEMESH_LANGUAGE_GPU_ADDR", "127.0.0.1:1")
        pools = language_pools(settings, factory, Metrics(), "planner")
        assert pools is not None
        assert [e.name for e in pools.cpu.endpoints] == [f"cpu:{settings.addresses['language']}"]
        assert [e.name for e in pools.gpu.endpoints] == ["gpu:127.0.0.1:1"]
    finally:
        await factory.close()
