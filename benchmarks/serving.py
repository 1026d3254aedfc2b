"""Run one service in its own process for a benchmark, as it runs in production: the load
generator then does not share the server's event loop (the two still share the machine's cores)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def served(
    service: str,
    env: Mapping[str, str] | None = None,
    *,
    ready_s: float = 300.0,
    data_dir: Path | None = None,
) -> AsyncIterator[str]:
    """``hivemesh serve <service>`` on a free port, without the mesh credential check
    (``HIVEMESH_MESH_AUTH=off``, unless ``env`` says otherwise); yields its address once it is ready.

    The service keeps its data in ``data_dir`` when given (a directory the benchmark prepared, left
    in place afterwards), else in a temporary directory removed when the service stops."""
    port = free_port()
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"hivemesh-{service}-")))
        environment = {
            **os.environ,
            "HIVEMESH_DATA_DIR": str(data_dir),
            "HIVEMESH_METRICS_PORT": "off",
            "HIVEMESH_LOG_LEVEL": "WARNING",
            # The load comes from this benchmark, not from a planner acting for a task: no mesh
            # credential to check. In the mesh, a credential's check is cached after its first call
            # (0.3 us; docs/security.md), so this leaves out no per-call cost worth measuring.
            "HIVEMESH_MESH_AUTH": "off",
            f"HIVEMESH_{service.upper()}_PORT": str(port),
            **(env or {}),
        }
        cli = Path(sys.executable).parent / "hivemesh"
        process = await asyncio.create_subprocess_exec(str(cli), "serve", service, env=environment)
        address = f"127.0.0.1:{port}"
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                loop = asyncio.get_running_loop()
                give_up = loop.time() + ready_s
                while True:
                    if process.returncode is not None:
                        raise RuntimeError(f"hivemesh serve {service} exited with {process.returncode}")
                    try:
                        answer = await health.Check(
                            health_pb2.HealthCheckRequest(service="readiness"), timeout=1
                        )
                        if answer.status == health_pb2.HealthCheckResponse.SERVING:
                            break
                    except grpc.aio.AioRpcError:
                        pass
                    if loop.time() > give_up:
                        raise TimeoutError(f"hivemesh serve {service} was not ready within {ready_s:.0f}s")
                    await asyncio.sleep(0.2)
            yield address
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except TimeoutError:
                    process.kill()
                    await process.wait()


def stop_processes(popens: Sequence[subprocess.Popen[bytes]], timeout_s: float) -> None:
    """SIGTERM to every process still running, then wait for each (SIGKILL past ``timeout_s``)."""
    for popen in popens:
        if popen.poll() is None:
            popen.terminate()
    for popen in popens:
        try:
            popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
