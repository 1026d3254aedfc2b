"""A process running one MeshServer with a slow tool, to test shutdown on SIGTERM.

Prints the bound port on stdout, then serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace

from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer, ServiceApp, run_until_signal
from hivemesh.tool.v1 import tool_service_pb2_grpc as tool_grpc
from tests.mesh.fixtures import ForwardingTool


async def main() -> None:
    settings = Settings.from_env({"HIVEMESH_METRICS_PORT": "off", "HIVEMESH_SHUTDOWN_DELAY": "300ms"})
    config = replace(settings.server, grace_period_s=float(sys.argv[1]))
    channels = ChannelFactory(settings)
    servicer = ForwardingTool(channels)  # type: ignore[abstract]  # a partial servicer: the rest answer UNIMPLEMENTED
    server = MeshServer(
        ServiceApp("tool", lambda s: tool_grpc.add_ToolServiceServicer_to_server(servicer, s)),
        config,
        0,
        Metrics(),
    )

    await run_until_signal([server], config.grace_period_s, on_started=lambda: print(server.port, flush=True))


if __name__ == "__main__":
    asyncio.run(main())
