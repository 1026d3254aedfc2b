"""Start each topology from nothing, as separate processes, and take it down again.

- embedded: one ``hivemesh up`` process (SQLite, embedded Qdrant, in-process queue) in a new data
  directory, without authentication, as on a laptop;
- distributed: ``hivemesh serve <service>`` for each service plus a second planner, on a new
  PostgreSQL database and a Redis database the benchmark owns (flushed before and after), with an
  API key, as in staging;
- floor: the five bare grpc.aio processes of ``benchmarks.throughput.floor``;
- openai-door: the embedded ``hivemesh up`` with its HTTP edge on, every task sent through the
  OpenAI door (``POST /v1/chat/completions``, not streamed) instead of the gateway's ExecuteTask:
  beside ``embedded`` in the same run it shows what the door adds.

Every process gets its own free ports (gRPC and Prometheus). The per-tenant rate limit is off
(``HIVEMESH_RATE_LIMIT=0``): it would cap the load at 50 tasks/s, which is policy, not capacity.
A topology that cannot start raises ``Unavailable`` with a one-line reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.serving import stop_processes
from benchmarks.throughput import floor
from hivemesh.client import HivemeshClient
from hivemesh.loadgen import Outcome, Request, Send, gateway_sender
from hivemesh.mesh.config import SERVICES

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = ("embedded", "distributed", "floor", "openai-door")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
START_TIMEOUT_S = 120.0


class Unavailable(Exception):
    """A topology cannot run here; the message says why in one line."""


class PortTaken(Unavailable):
    """A process could not listen on the free port picked for it: something else took it in
    between. Starting again with new ports may work."""


_PORT_TAKEN = re.compile(r"Failed to bind to address|Address already in use")


@dataclass
class Process:
    label: str
    popen: subprocess.Popen[bytes]
    metrics_port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid


@dataclass
class Topology:
    """A running topology: its processes and how to send it a task."""

    name: str
    processes: list[Process]
    # Runs one task (bounded by the given seconds).
    sender: Callable[[float], Send]
    # The tenant the tasks run as (the one a seeded log must hold).
    tenant_id: str
    # Whether answers are real (the floor's are not, so they are not judged).
    real_answers: bool = True

    def check_running(self) -> None:
        """Raise Unavailable naming a process that has exited, and why."""
        for process in self.processes:
            if process.popen.poll() is not None:
                raise Unavailable(
                    f"{process.label} exited with status {process.popen.returncode}: {_reason(process.log)}"
                )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _base_env(data_dir: Path) -> dict[str, str]:
    """This environment without any HIVEMESH_* setting of the caller's, plus the benchmark's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVEMESH_")}
    path = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        PYTHONPATH=os.pathsep.join(dict.fromkeys(path)),
        HIVEMESH_DATA_DIR=str(data_dir),
        HIVEMESH_RATE_LIMIT="0",
        HIVEMESH_GRACE_PERIOD="2s",
    )
    return env


@dataclass(frozen=True)
class _Spec:
    """A process to start, and what must answer before it counts as started."""

    label: str
    argv: list[str]
    env: dict[str, str]
    metrics_port: int
    ports: tuple[int, ...]
    # hivemesh services answer the readiness health check; the floor only accepts connections.
    health: bool = True


def _spawn(spec: _Spec, workdir: Path) -> Process:
    log = workdir / f"{spec.label}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(spec.argv, env=spec.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return Process(spec.label, popen, spec.metrics_port, log)


def _reason(log: Path) -> str:
    """The line of a process's log that says best why it stopped."""
    try:
        return _reason_text(log.read_text(errors="replace"))
    except OSError:
        return ""


def _reason_text(text: str) -> str:
    """The last exception line of ``text``, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Exit)\b", line)]
    return (errors or lines or [""])[-1]


async def _ready(process: Process, port: int, *, health: bool) -> None:
    """Wait until ``port`` answers (its readiness health check, for hivemesh services)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.popen.poll() is not None:
                reason = _reason(process.log)
                kind = PortTaken if _PORT_TAKEN.search(reason) else Unavailable
                raise kind(f"{process.label} exited at start: {reason}")
            if time.monotonic() > deadline:
                raise Unavailable(f"{process.label} not ready after {START_TIMEOUT_S:.0f}s")
            try:
                if not health:
                    await asyncio.wait_for(channel.channel_ready(), 2.0)
                    return
                reply = await stub.Check(health_pb2.HealthCheckRequest(service="readiness"), timeout=2.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except (grpc.aio.AioRpcError, TimeoutError):
                pass
            await asyncio.sleep(0.2)


def _stop(processes: list[Process]) -> None:
    stop_processes([process.popen for process in processes], timeout_s=15)


@contextlib.asynccontextmanager
async def _running(
    name: str, workdir: Path, specs: list[_Spec], sender: Callable[[float], Send], tenant_id: str
) -> AsyncIterator[Topology]:
    """Start the processes together, wait until each answers, yield the topology, stop them all."""
    processes: list[Process] = []
    try:
        for spec in specs:
            processes.append(_spawn(spec, workdir))  # one by one: all that started are stopped
        await asyncio.gather(
            *(
                _ready(process, port, health=spec.health)
                for spec, process in zip(specs, processes, strict=True)
                for port in spec.ports
            )
        )
        yield Topology(name, processes, sender, tenant_id, real_answers=name != "floor")
    finally:
        await asyncio.to_thread(_stop, processes)


def _hivemesh(*args: str) -> list[str]:
    return [sys.executable, "-m", "hivemesh.cli", *args]


def _ports_env(ports: dict[str, int]) -> dict[str, str]:
    return {f"HIVEMESH_{name.upper()}_PORT": str(port) for name, port in ports.items()}


@contextlib.asynccontextmanager
async def embedded(workdir: Path, *, openai_door: bool = False) -> AsyncIterator[Topology]:
    """``hivemesh up`` on the data directory ``workdir / "data"`` (seed it first for a full log);
    with ``openai_door``, its edge on a free port and every task sent through the OpenAI door."""
    ports = {name: free_port() for name in SERVICES}
    metrics = free_port()
    env = {**_base_env(workdir / "data"), **_ports_env(ports), "HIVEMESH_METRICS_PORT": str(metrics)}
    env["HIVEMESH_AUTH"] = "none"
    edge_port = free_port() if openai_door else None
    env["HIVEMESH_EDGE_PORT"] = "off" if edge_port is None else str(edge_port)
    spec = _Spec("hivemesh", _hivemesh("up"), env, metrics, tuple(ports.values()))
    if edge_port is None:
        async with (
            HivemeshClient(f"127.0.0.1:{ports['gateway']}") as client,
            _running("embedded", workdir, [spec], _gateway_sender(client), "default") as topology,
        ):
            yield topology
        return
    base = f"http://127.0.0.1:{edge_port}"
    # As many connections as the largest closed loop keeps busy: the door is measured, not a pool.
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with (
        httpx.AsyncClient(base_url=base, limits=limits) as http,
        _running("openai-door", workdir, [spec], _openai_sender(http), "default") as topology,
    ):
        await _http_ready(http, topology.processes[0])
        yield topology


async def _http_ready(http: httpx.AsyncClient, process: Process) -> None:
    """Wait until the edge answers its readiness check (it starts after the gRPC servers)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.popen.poll() is not None:
            raise Unavailable(f"{process.label} exited at start: {_reason(process.log)}")
        if time.monotonic() > deadline:
            raise Unavailable(f"the edge of {process.label} not ready after {START_TIMEOUT_S:.0f}s")
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get("/readyz", timeout=2.0)).status_code == 200:
                return
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def distributed(workdir: Path, database_url: str, redis_url: str) -> AsyncIterator[Topology]:
    """One process per service and a second planner, on ``database_url`` and ``redis_url`` (both
    prepared by ``stores``), all started together as a deployment starts them."""
    ports = {name: free_port() for name in SERVICES}
    env = {
        **_base_env(workdir / "data"),
        **_ports_env(ports),
        "HIVEMESH_DATABASE_URL": database_url,
        "HIVEMESH_REDIS_URL": redis_url,
        "HIVEMESH_REDIS_PREFIX": f"hivemesh-bench-{uuid.uuid4().hex[:8]}:{{tasks}}",
    }
    created = await asyncio.to_thread(
        subprocess.run,
        _hivemesh("keys", "create", "--tenant", "bench", "--name", "throughput benchmark"),
        env={**env, "HIVEMESH_METRICS_PORT": "off"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0:
        raise Unavailable(f"hivemesh keys create failed: {_reason_text(created.stderr)}")
    key = created.stdout.strip()

    def spec(label: str) -> _Spec:
        service = label.removesuffix("-2")
        metrics = free_port()
        own = {**env, "HIVEMESH_METRICS_PORT": str(metrics)}
        port = ports[service]
        if label != service:
            port = free_port()
            own[f"HIVEMESH_{service.upper()}_PORT"] = str(port)
        return _Spec(label, _hivemesh("serve", service), own, metrics, (port,))

    specs = [spec(s) for s in ("tool", "memory", "language", "planner", "planner-2", "gateway")]
    async with (
        HivemeshClient(f"127.0.0.1:{ports['gateway']}", metadata=[("x-api-key", key)]) as client,
        _running("distributed", workdir, specs, _gateway_sender(client), "bench") as topology,
    ):
        yield topology


@contextlib.asynccontextmanager
async def floor_topology(workdir: Path) -> AsyncIterator[Topology]:
    ports = {name: free_port() for name in floor.SERVICES}
    env = _base_env(workdir / "data")
    specs = []
    for name in floor.START_ORDER:
        metrics = free_port()
        argv = [sys.executable, "-m", "benchmarks.throughput.floor", name]
        argv += ["--port", str(ports[name]), "--metrics-port", str(metrics)]
        for other in floor.SERVICES:
            argv += ["--address", f"{other}=127.0.0.1:{ports[other]}"]
        specs.append(_Spec(name, argv, env, metrics, (ports[name],), health=False))
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{ports['gateway']}") as channel,
        _running("floor", workdir, specs, _floor_sender(channel), "") as topology,
    ):
        yield topology


def _gateway_sender(client: HivemeshClient) -> Callable[[float], Send]:
    def make(timeout_s: float) -> Send:
        return gateway_sender(client, timeout_s=timeout_s)

    return make


def _openai_sender(http: httpx.AsyncClient) -> Callable[[float], Send]:
    """Runs each task as one chat completion of the OpenAI door, as the task's user and session."""

    def make(timeout_s: float) -> Send:
        async def send(request: Request) -> Outcome:
            body = {"model": "hivemesh", "messages": [{"role": "user", "content": request.text}]}
            headers = {"x-hivemesh-user": request.user_id, "x-hivemesh-session": request.session_id}
            try:
                response = await http.post(
                    "/v1/chat/completions", json=body, headers=headers, timeout=timeout_s
                )
            except httpx.TimeoutException:
                return Outcome(error="DEADLINE_EXCEEDED")
            except httpx.HTTPError as exc:
                return Outcome(error=f"HTTP {type(exc).__name__}")
            if response.status_code != 200:
                code = response.json().get("error", {}).get("code") or ""
                return Outcome(error=f"HTTP {response.status_code} {code}".strip())
            state = response.headers.get("x-hivemesh-task-state", "")
            if state != "completed":
                return Outcome(error=f"TASK_STATE_{state.upper()}")
            return Outcome(answer=response.json()["choices"][0]["message"]["content"])

        return send

    return make


def _floor_sender(channel: grpc.aio.Channel) -> Callable[[float], Send]:
    execute: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(floor.EXECUTE, None, None)

    def make(timeout_s: float) -> Send:
        async def send(request: Request) -> Outcome:
            last = b""
            try:
                async for event in execute(
                    f"{request.user_id}/{request.session_id}: {request.text}".encode(), timeout=timeout_s
                ):
                    last = event
            except grpc.aio.AioRpcError as exc:
                return Outcome(error=exc.code().name)
            if not last.startswith(b"completed "):
                return Outcome(error="STREAM_ENDED_EARLY")
            return Outcome(answer=last.removeprefix(b"completed ").decode(errors="replace"))

        return send

    return make


# ---- the distributed topology's stores ----------------------------------------------------------


@contextlib.asynccontextmanager
async def stores(redis_url: str, postgres_url: str) -> AsyncIterator[tuple[str, str]]:
    """A new PostgreSQL database (dropped afterwards) and the Redis database of ``redis_url``
    flushed before and after. Yields (database URL, Redis URL); Unavailable when either server
    cannot be reached or the client libraries are missing."""
    try:
        import asyncpg  # noqa: PLC0415 - optional: hivemesh[distributed]
        import redis.asyncio as aioredis  # noqa: PLC0415
        from redis.exceptions import RedisError  # noqa: PLC0415
    except ImportError as exc:
        raise Unavailable(f"{exc.name} is not installed (pip install -e '.[distributed]')") from None
    redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2.0)
    try:
        await redis.flushdb()
    except (RedisError, OSError) as exc:
        await redis.aclose()
        raise Unavailable(f"Redis not reachable at {redis_url}: {exc}") from None
    name = f"hivemesh_bench_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(postgres_url, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        await redis.aclose()
        raise Unavailable(f"PostgreSQL not reachable at {postgres_url}: {exc}") from None
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}", redis_url
    finally:
        with contextlib.suppress(RedisError, OSError):
            await redis.flushdb()
        await redis.aclose()
        admin = await asyncpg.connect(postgres_url, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
