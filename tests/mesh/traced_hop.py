"""A process that makes one traced call, caller -> tool -> memory, and writes the spans to a file.

Usage: python -m tests.mesh.traced_hop <in-process|grpc> <trace file>
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from opentelemetry import trace

from hivemesh.mesh.config import Settings, TracingConfig
from hivemesh.mesh.telemetry import setup_tracing, shutdown_tracing
from hivemesh.tool.v1 import tool_service_pb2 as tool
from tests.mesh.hop import start_hop, stop_hop


async def main(path: str, trace_file: Path) -> None:
    setup_tracing("hivemesh-test", TracingConfig(file=trace_file))
    hop = await start_hop(Settings.from_env({"HIVEMESH_METRICS_PORT": "off"}), path)
    try:
        with trace.get_tracer("tests").start_as_current_span("caller"):
            await hop.tool.InvokeTool(tool.InvokeToolRequest(tool_name="forward"))
    finally:
        await stop_hop(hop)
        shutdown_tracing()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
