"""Two language servers, one declared as the GPU pool: heavy calls go there below its capacity and
spill to the CPU pool, cheap calls stay on the CPU pool, and when the GPU pool is killed and started
again no task fails and the calls come back to it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import TaskEvent
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.config import ConfigError, Settings
from hivemesh.mesh.language_pools import PoolsConfig
from hivemesh.release.v1 import release_service_pb2 as rel
from hivemesh.release.v1.release_service_pb2_grpc import ReleaseServiceStub
from tests.support import RunningMesh, make_settings, start_mesh

pytestmark = pytest.mark.slow

GPU_CAPACITY = 2


def served(mesh: RunningMesh, method: str) -> int:
    """Calls of ``method`` the language server of ``mesh`` answered OK."""
    values = (
        mesh.metrics.registry.get_sample_value(
            "grpc_server_handled_total",
            {
                "grpc_type": kind,
                "grpc_service": "hivemesh.language.v1.LanguageService",
                "grpc_method": method,
                "grpc_code": "OK",
                "release": mesh.metrics.release,
            },
        )
        for kind in ("unary", "server_stream")
    )
    return int(sum(value or 0 for value in values))


def routed(mesh: RunningMesh, pool: str, method: str, caller: str = "planner") -> int:
    value = mesh.metrics.registry.get_sample_value(
        "hivemesh_language_routed_calls_total", {"caller": caller, "pool": pool, "method": method}
    )
    return int(value or 0)


async def start_language(settings: Settings, monkeypatch: pytest.MonkeyPatch, *, gpu: bool) -> RunningMesh:
    with monkeypatch.context() as env:
        if gpu:
            # Declared the GPU pool: its lexical Understand and Embed count as heavy; it takes two at once.
            env.setenv("HIVEMESH_LANGUAGE_HEAVY_METHODS", "Understand,Embed")
            env.setenv("HIVEMESH_LANGUAGE_CAPACITY", str(GPU_CAPACITY))
        return await start_mesh(settings, ["language"])


async def run_tasks(mesh: RunningMesh, prefix: str, count: int, text: str = "") -> list[TaskEvent]:
    stub = GatewayServiceStub(mesh.client("gateway"))

    async def one(n: int) -> TaskEvent:
        request = gw.ExecuteTaskRequest(
            request_id=f"{prefix}-{n}",
            text=text or f"what is {n} + 1?",
            scope=Scope(user_id="u", session_id=f"s{n}"),
        )
        events = [response.event async for response in stub.ExecuteTask(request)]
        return events[-1]

    return list(await asyncio.gather(*(one(n) for n in range(count))))


def answers(last: list[TaskEvent]) -> list[str]:
    return [e.completed.answer if e.WhichOneof("kind") == "completed" else str(e) for e in last]


async def test_heavy_calls_prefer_the_gpu_pool_and_survive_its_death(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    base = make_settings(data)
    gpu = await start_language(base, monkeypatch, gpu=True)
    cpu = await start_language(base, monkeypatch, gpu=False)
    gpu_port = gpu.servers["language"].port
    gpu_address = gpu.address("language")
    monkeypatch.setenv("HIVEMESH_LANGUAGE_GPU_ADDR", gpu_address)
    monkeypatch.setenv("HIVEMESH_LANGUAGE_EJECT_FOR", "0.2")
    settings = make_settings(data, HIVEMESH_LANGUAGE_ADDR=cpu.address("language"))
    mesh = await start_mesh(settings, ["gateway", "planner", "memory", "tool"])
    try:
        # The GPU server describes itself; the CPU one has nothing heavy.
        described = await ReleaseServiceStub(gpu.bare_client("language")).GetRelease(rel.GetReleaseRequest())
        runtime = described.release.runtime
        assert (runtime.device, runtime.batch_capacity) == ("cpu", GPU_CAPACITY)
        assert list(runtime.heavy_methods) == ["Understand", "Embed"]
        assert "lexical" in runtime.models

        # Under load: Understand fills the GPU pool up to its capacity and spills the rest.
        first = await run_tasks(mesh, "load", 12)
        assert answers(first) == [str(n + 1) for n in range(12)]
        gpu_understood, cpu_understood = served(gpu, "Understand"), served(cpu, "Understand")
        assert gpu_understood >= 1
        assert cpu_understood >= 1
        assert gpu_understood + cpu_understood == 12
        # Generate is cheap here (the built-in composer): never on the GPU pool.
        assert served(gpu, "Generate") == 0
        assert served(cpu, "Generate") == 12
        assert routed(mesh, "gpu", "Understand") == gpu_understood
        # Memory embeds what it is told to remember (a heavy call too): through its own pools.
        told = await run_tasks(mesh, "remember", 1, "remember that my sister's name is Ana")
        assert answers(told)[0]
        assert routed(mesh, "gpu", "Embed", "memory") == served(gpu, "Embed") >= 1

        # The GPU pool dies while tasks run: no task fails, the CPU pool answers.
        during = asyncio.create_task(run_tasks(mesh, "kill", 12))
        await asyncio.sleep(0.05)
        await gpu.stop(grace_s=0.0)
        assert answers(await during) == [str(n + 1) for n in range(12)]
        after_kill = await run_tasks(mesh, "dead", 12)
        assert answers(after_kill) == [str(n + 1) for n in range(12)]
        assert f"gpu:{gpu_address} ejected" in caplog.text
        assert routed(mesh, "gpu", "Understand") + routed(mesh, "cpu", "Understand") == 12 + 1 + 12 + 12
        gpu_before_restart = routed(mesh, "gpu", "Understand")

        # Started again on its port: probed back, it takes heavy calls again.
        gpu = await start_language(base.with_ports(language=gpu_port), monkeypatch, gpu=True)
        deadline = time.monotonic() + 20
        rounds = 0
        while served(gpu, "Understand") == 0:
            assert time.monotonic() < deadline, "the GPU pool was never probed back"
            rounds += 1
            assert answers(await run_tasks(mesh, f"back{rounds}", 4)) == ["1", "2", "3", "4"]
            await asyncio.sleep(0.1)
        assert routed(mesh, "gpu", "Understand") > gpu_before_restart
    finally:
        await mesh.stop()
        await gpu.stop()
        await cpu.stop()


def test_pool_addresses_are_checked() -> None:
    config = PoolsConfig.from_env(
        {
            "HIVEMESH_LANGUAGE_GPU_ADDR": "gpu-0:50053, gpu-1:50053",
            "HIVEMESH_LANGUAGE_CPU_ADDR": "cpu:50053",
            "HIVEMESH_LANGUAGE_EJECT_FOR": "2s",
        }
    )
    assert config == PoolsConfig(gpu=("gpu-0:50053", "gpu-1:50053"), cpu=("cpu:50053",), eject_for_s=2.0)
    assert PoolsConfig.from_env({}) is None
    for env, message in [
        ({"HIVEMESH_LANGUAGE_GPU_ADDR": "gpu"}, "HIVEMESH_LANGUAGE_GPU_ADDR must be host:port"),
        ({"HIVEMESH_LANGUAGE_CPU_ADDR": "cpu:1"}, "needs HIVEMESH_LANGUAGE_GPU_ADDR"),
        ({"HIVEMESH_LANGUAGE_GPU_ADDR": "a:1", "HIVEMESH_LANGUAGE_CPU_ADDR": "a:1"}, "in both"),
    ]:
        with pytest.raises(ConfigError, match=message):
            PoolsConfig.from_env(env)
