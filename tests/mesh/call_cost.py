"""What a call between two services of one process costs, in-process and over gRPC on loopback.

Runs tool and memory in a LocalMesh (real services, embedded storage), calls them through the
process's own channels as the planner does (client interceptors on), and prints CPU time and wall
time per call: memory GetContext (a session of four turns, read from SQLite), tool ListTools (the
registry, in memory) and tool ListTools of one tool (a small message: mostly the cost of the call).
The process's CPU time counts both sides of each call and gRPC's own
threads.

    python -m tests.mesh.call_cost [--calls 2000] [--concurrency 1] [--path P] [--call C]

``--path`` measures one path only, e.g. under ``py-spy record -- python -m tests.mesh.call_cost``.
``--tasks N`` measures whole tasks instead: all five services, N requests in words through the
gateway one after another (the client's call to the gateway is gRPC on both paths; the planner's
calls to language, memory and tool are what changes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from hivemesh.common.v1.content_pb2 import Role
from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.memory.v1 import memory_service_pb2 as mem
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.launch import LocalMesh
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub
from tests.mesh.hop import PATHS
from tests.support import make_settings

WARM_UP = 200
SCOPE = Scope(tenant_id="bench", user_id="ana", session_id="s1")


@dataclass(frozen=True)
class Cost:
    path: str
    call: str
    cpu_us: float
    wall_us: float


async def run(calls: int, concurrency: int, call: Callable[[], Awaitable[object]]) -> None:
    async def worker(share: int) -> None:
        for _ in range(share):
            await call()

    shares = [calls // concurrency + (1 if i < calls % concurrency else 0) for i in range(concurrency)]
    await asyncio.gather(*(worker(share) for share in shares))


PROBES = ("memory GetContext", "tool ListTools", "tool ListTools 1")


async def measure(
    path: str, calls: int, concurrency: int, data_dir: Path, only: list[str] | None = None
) -> list[Cost]:
    settings = replace(make_settings(data_dir), local_calls=path == "in-process")
    mesh = LocalMesh(settings, ["tool", "memory"])
    await mesh.start()
    try:
        memory = MemoryServiceStub(mesh.channels.channel("memory"))
        tools = ToolServiceStub(mesh.channels.channel("tool"))
        turns = [
            mem.Turn(role=Role.ROLE_USER if i % 2 == 0 else Role.ROLE_ASSISTANT, text=f"turn {i} of the talk")
            for i in range(4)
        ]
        await memory.AppendTurns(mem.AppendTurnsRequest(scope=SCOPE, turns=turns, request_id="seed"))
        probes: dict[str, Callable[[], Awaitable[object]]] = {
            "memory GetContext": lambda: memory.GetContext(mem.GetContextRequest(scope=SCOPE)),
            "tool ListTools": lambda: tools.ListTools(tool.ListToolsRequest(page_size=100)),
            "tool ListTools 1": lambda: tools.ListTools(tool.ListToolsRequest(page_size=1)),
        }
        costs = []
        for name, probe in probes.items():
            if only and name not in only:
                continue
            await run(WARM_UP, concurrency, probe)
            cpu, wall = time.process_time(), time.perf_counter()
            await run(calls, concurrency, probe)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            costs.append(Cost(path, name, cpu / calls * 1e6, wall / calls * 1e6))
        return costs
    finally:
        await mesh.stop()


async def measure_tasks(path: str, tasks: int, data_dir: Path) -> Cost:
    settings = replace(make_settings(data_dir), local_calls=path == "in-process")
    mesh = LocalMesh(settings)
    await mesh.start()
    channel = grpc.aio.insecure_channel(mesh.address("gateway"))
    gateway = GatewayServiceStub(channel)

    async def ask(n: int) -> None:
        text = f"what is {n} * (3 + 4)?"
        request = gw.ExecuteTaskRequest(request_id=f"{path}-{n}", text=text, scope=SCOPE)
        events = [r.event async for r in gateway.ExecuteTask(request)]
        assert events[-1].completed.answer == str(n * 7), events[-1]

    try:
        for n in range(10):  # warm up
            await ask(-1 - n)
        cpu, wall = time.process_time(), time.perf_counter()
        for n in range(tasks):
            await ask(n)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return Cost(path, "task (5 services)", cpu / tasks * 1e6, wall / tasks * 1e6)
    finally:
        await channel.close(None)
        await mesh.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--path", choices=PATHS, action="append")
    parser.add_argument("--call", choices=PROBES, action="append")
    parser.add_argument("--tasks", type=int, default=0)
    args = parser.parse_args()
    # The laptop mesh's gateway, as `hivemesh up` runs it: no credentials.
    os.environ.setdefault("HIVEMESH_AUTH", "none")
    results: list[Cost] = []
    with tempfile.TemporaryDirectory() as data:
        for path in args.path or PATHS:
            if args.tasks:
                results.append(await measure_tasks(path, args.tasks, Path(data) / path))
            else:
                results += await measure(path, args.calls, args.concurrency, Path(data) / path, args.call)
    if args.tasks:
        print(f"{args.tasks} tasks per row, one at a time")
    else:
        print(f"{args.calls} calls per row, {args.concurrency} in flight")
    print(f"{'call':<20} {'path':<11} {'CPU us/call':>12} {'wall us/call':>13}")
    for cost in results:
        print(f"{cost.call:<20} {cost.path:<11} {cost.cpu_us:>12.0f} {cost.wall_us:>13.0f}")


if __name__ == "__main__":
    asyncio.run(main())
