"""Two services of one process, tool forwarding to memory, reached the way services reach each
other (ChannelFactory channels, client interceptors on): in-process or over gRPC on loopback."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from hivemesh.memory.v1 import memory_service_pb2_grpc as mem_grpc
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer, ServiceApp
from hivemesh.tool.v1 import tool_service_pb2_grpc as tool_grpc
from tests.mesh.fixtures import ForwardingTool, RecordingMemory

PATHS = ("in-process", "grpc")
TOOL = "hivemesh.tool.v1.ToolService"


@dataclass
class Hop:
    path: str
    tool: tool_grpc.ToolServiceAsyncStub
    forwarding: ForwardingTool
    memory: RecordingMemory
    metrics: Metrics
    channels: ChannelFactory
    tool_server: MeshServer
    memory_server: MeshServer

    def count(self, method: str, code: str, service: str = TOOL) -> float:
        labels = {
            "grpc_service": service,
            "grpc_method": method,
            "grpc_code": code,
            "release": self.metrics.release,
        }
        registry = self.metrics.registry
        return sum(
            registry.get_sample_value("grpc_server_handled_total", {"grpc_type": kind, **labels}) or 0.0
            for kind in ("unary", "server_stream")
        )

    async def counted(self, method: str, code: str) -> float:
        """The count once the handler's bookkeeping has run (it ends after the caller is answered)."""
        for _ in range(100):
            if self.count(method, code):
                break
            await asyncio.sleep(0.01)
        return self.count(method, code)


async def start_hop(settings: Settings, path: str) -> Hop:
    settings = replace(settings, local_calls=path == "in-process")
    metrics = Metrics()
    channels = ChannelFactory(settings)
    memory = RecordingMemory()  # type: ignore[abstract]  # a partial servicer: the rest answer UNIMPLEMENTED
    memory_server = MeshServer(
        ServiceApp("memory", lambda s: mem_grpc.add_MemoryServiceServicer_to_server(memory, s)),
        settings.server,
        0,
        metrics,
    )
    channels.serve_locally(memory_server.local)
    await memory_server.start()
    channels.set_address("memory", f"127.0.0.1:{memory_server.port}")
    forwarding = ForwardingTool(channels)  # type: ignore[abstract]  # as above
    tool_server = MeshServer(
        ServiceApp("tool", lambda s: tool_grpc.add_ToolServiceServicer_to_server(forwarding, s)),
        settings.server,
        0,
        metrics,
    )
    channels.serve_locally(tool_server.local)
    await tool_server.start()
    channels.set_address("tool", f"127.0.0.1:{tool_server.port}")
    stub = tool_grpc.ToolServiceStub(channels.channel("tool"))
    return Hop(path, stub, forwarding, memory, metrics, channels, tool_server, memory_server)


async def stop_hop(hop: Hop) -> None:
    for server in (hop.tool_server, hop.memory_server):
        await server.stop(0.5)
    await hop.channels.close()
