"""SIGTERM: readiness goes NOT_SERVING, in-flight calls finish, new calls are refused, the process exits."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1 import tool_service_pb2_grpc as tool_grpc
from tests.support import rpc_error

ROOT = Path(__file__).resolve().parents[2]
GRACE_S = 5.0


async def test_sigterm_drains_in_flight_calls_and_exits() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.mesh.slow_server",
        str(GRACE_S),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    port = int((await asyncio.wait_for(process.stdout.readline(), 20)).decode())
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = tool_grpc.ToolServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    try:
        in_flight = [
            asyncio.ensure_future(stub.InvokeTool(tool.InvokeToolRequest(tool_name="slow"))) for _ in range(3)
        ]
        await asyncio.sleep(0.3)  # the calls have reached the servicer
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.1)
        readiness = await health.Check(health_pb2.HealthCheckRequest(service="readiness"))
        liveness = await health.Check(health_pb2.HealthCheckRequest(service="liveness"))
        assert readiness.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert liveness.status == health_pb2.HealthCheckResponse.SERVING
        await asyncio.sleep(0.4)  # past the shutdown delay: the listener is closed
        fresh = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        refused = await rpc_error(
            tool_grpc.ToolServiceStub(fresh).InvokeTool(tool.InvokeToolRequest(tool_name="x"), timeout=2)
        )
        await fresh.close(None)
        assert refused.code == grpc.StatusCode.UNAVAILABLE
        results = await asyncio.gather(*in_flight)
        assert [r.display for r in results] == ["slow done"] * 3
        code = await asyncio.wait_for(process.wait(), GRACE_S)
        assert code == 0
    finally:
        await channel.close(None)
        if process.returncode is None:
            process.kill()
            await process.wait()
