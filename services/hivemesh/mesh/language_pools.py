"""Language calls routed by their cost over a GPU pool and a CPU pool (the planner's Understand and
Generate, memory's Embed).

``HIVEMESH_LANGUAGE_GPU_ADDR`` names the GPU pool's replicas (or one Service address); the CPU pool is
``HIVEMESH_LANGUAGE_CPU_ADDR``, by default the language address every service uses. A heavy call
(a method the GPU pool reports in ``Runtime.heavy_methods``: MiniLM understanding, Embed, a local
model's Generate) goes to the GPU pool while one of its replicas is in rotation and this process
has fewer calls in flight there than the pool's capacity (``Runtime.batch_capacity`` per replica);
otherwise, and for every cheap call, to the CPU pool. Inside a pool, the replica with the fewest
outstanding calls. A replica that answers UNAVAILABLE, RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED is
ejected (``hivemesh.mesh.balancer``) and the call moves on to the next replica or pool, as long as
nothing of its answer has reached the caller; an ejected replica comes back when it answers
GetRelease, which also refreshes what it reports.

Without a GPU address none of this exists: callers use their one language channel.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

import grpc
from prometheus_client import Counter

from hivemesh.common.v1.release_pb2 import Runtime
from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceStub
from hivemesh.mesh.balancer import Balancer, EjectionPolicy, Endpoint
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import ConfigError, EnvReader, Settings
from hivemesh.mesh.errors import HivemeshError
from hivemesh.mesh.metrics import Metrics
from hivemesh.release.v1 import release_service_pb2 as rel
from hivemesh.release.v1.release_service_pb2_grpc import ReleaseServiceStub

if TYPE_CHECKING:  # the async stubs exist in the type stubs only
    from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceAsyncStub
    from hivemesh.release.v1.release_service_pb2_grpc import ReleaseServiceAsyncStub

_log = logging.getLogger(__name__)

R = TypeVar("R")

# Codes that say the replica, not the request, is the problem. CANCELLED reaches a caller as an
# error only when the server cancelled the call (a replica stopping); the caller's own
# cancellation raises asyncio.CancelledError instead.
EJECTING_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    }
)
# Assumed until the GPU pool has described itself: the calls that run MiniLM when it is loaded.
DEFAULT_HEAVY = frozenset({"Understand", "Embed"})
DEFAULT_CAPACITY = 64
DESCRIBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class PoolsConfig:
    """The language pools as a caller sees them."""

    # The GPU pool's addresses (HIVEMESH_LANGUAGE_GPU_ADDR: host:port, comma-separated replicas).
    gpu: tuple[str, ...]
    # The CPU pool's (HIVEMESH_LANGUAGE_CPU_ADDR); empty: the language address.
    cpu: tuple[str, ...] = ()
    # How long a failing replica stays out first (doubling while it keeps failing).
    eject_for_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PoolsConfig | None:
        """None without ``HIVEMESH_LANGUAGE_GPU_ADDR``: one pool, no routing."""
        reader = EnvReader(env)
        gpu = _addresses(reader, "HIVEMESH_LANGUAGE_GPU_ADDR")
        cpu = _addresses(reader, "HIVEMESH_LANGUAGE_CPU_ADDR")
        if not gpu:
            if cpu:
                raise ConfigError("HIVEMESH_LANGUAGE_CPU_ADDR needs HIVEMESH_LANGUAGE_GPU_ADDR beside it")
            return None
        overlap = set(gpu) & set(cpu)
        if overlap:
            raise ConfigError(f"{', '.join(sorted(overlap))} is in both the GPU and the CPU language pool")
        return cls(
            gpu=gpu, cpu=cpu, eject_for_s=reader.seconds("HIVEMESH_LANGUAGE_EJECT_FOR", 10.0, minimum=0.05)
        )


def _addresses(reader: EnvReader, name: str) -> tuple[str, ...]:
    raw = reader.optional(name)
    if raw is None:
        return ()
    addresses = tuple(a.strip() for a in raw.split(",") if a.strip())
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name} must be host:port entries separated by commas, got {address!r}")
    return addresses


def language_pools(
    settings: Settings, channels: ChannelFactory, metrics: Metrics, caller: str
) -> LanguagePools | None:
    """The pools ``caller`` routes its language calls over, or None with one language address."""
    config = PoolsConfig.from_env(os.environ)
    if config is None:
        return None
    cpu = config.cpu or (settings.addresses["language"],)
    return LanguagePools(channels, replace(config, cpu=cpu), metrics.language_routed, caller)


class Replica:
    """One address of a pool: its stubs, on a channel opened at first use (a server of this
    process binds its port after the planner is built)."""

    def __init__(self, channels: ChannelFactory, address: str) -> None:
        self._channels = channels
        self._address = address
        self._language: LanguageServiceAsyncStub | None = None
        self._release: ReleaseServiceAsyncStub | None = None

    @property
    def language(self) -> LanguageServiceAsyncStub:
        if self._language is None:
            self._language = LanguageServiceStub(self._channels.channel_to("language", self._address))
        return self._language

    @property
    def release(self) -> ReleaseServiceAsyncStub:
        if self._release is None:
            self._release = ReleaseServiceStub(self._channels.channel_to("language", self._address))
        return self._release


class LanguagePools:
    """The routing state of one calling service (the planner, memory), shared by all its calls."""

    def __init__(self, channels: ChannelFactory, config: PoolsConfig, routed: Counter, caller: str) -> None:
        policy = EjectionPolicy(base_ejection_s=config.eject_for_s, max_ejection_s=config.eject_for_s * 8)

        def pool(name: str, addresses: Sequence[str]) -> Balancer[Replica]:
            endpoints = [Endpoint(f"{name}:{address}", Replica(channels, address)) for address in addresses]
            return Balancer(endpoints, policy, probe=self._probe)

        self.gpu = pool("gpu", config.gpu)
        self.cpu = pool("cpu", config.cpu)
        self._heavy = DEFAULT_HEAVY
        self._capacity = DEFAULT_CAPACITY * len(config.gpu)
        self._described = False
        self._routed = routed
        self._caller = caller

    @property
    def heavy_methods(self) -> frozenset[str]:
        return self._heavy

    @property
    def gpu_capacity(self) -> int:
        return self._capacity

    async def describe_gpu(self) -> None:
        """Asks a GPU replica what it runs (heavy methods, capacity); keeps the defaults if none
        answers."""
        for endpoint in self.gpu.endpoints:
            try:
                await self._probe(endpoint.target)
            except (grpc.aio.AioRpcError, HivemeshError) as exc:
                _log.info("GPU replica %s did not describe itself: %s", endpoint.name, exc)
                continue
            return

    async def _probe(self, replica: Replica) -> None:
        response: rel.GetReleaseResponse = await replica.release.GetRelease(
            rel.GetReleaseRequest(), timeout=DESCRIBE_TIMEOUT_S
        )
        runtime = response.release.runtime
        if any(replica is e.target for e in self.gpu.endpoints) and response.release.HasField("runtime"):
            self._learn(runtime)

    def _learn(self, runtime: Runtime) -> None:
        self._heavy = frozenset(runtime.heavy_methods)
        if runtime.batch_capacity:
            self._capacity = runtime.batch_capacity * len(self.gpu.endpoints)
        self._described = True

    def plan(self, method: str) -> list[tuple[str, Balancer[Replica], Endpoint[Replica]]]:
        """The replicas a call tries, in order: the GPU pool's least loaded first for a heavy call
        with room there, then the CPU pool's, then the rest of the GPU pool as the last resort."""
        gpu_live = self.gpu.available()
        cpu_order = self.cpu.by_preference()
        cpu = [("cpu", self.cpu, e) for e in cpu_order if not e.ejected]
        cpu_out = [("cpu", self.cpu, e) for e in cpu_order if e.ejected]
        gpu = [("gpu", self.gpu, e) for e in sorted(gpu_live, key=lambda e: e.outstanding)]
        in_flight = sum(e.outstanding for e in self.gpu.endpoints)
        if method in self._heavy and gpu and in_flight < self._capacity:
            return [*gpu, *cpu, *cpu_out]
        return [*cpu, *gpu, *cpu_out]

    async def unary(self, method: str, call: Callable[[LanguageServiceAsyncStub], Awaitable[R]]) -> R:
        if not self._described:
            self._described = True  # asked once; probes keep it fresh afterwards
            await self.describe_gpu()
        last: grpc.aio.AioRpcError | None = None
        for pool, balancer, endpoint in self.plan(method):
            with balancer.track(endpoint):
                try:
                    result = await call(endpoint.target.language)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in EJECTING_CODES:
                        raise
                    balancer.failed(endpoint)
                    last = exc
                    continue
            balancer.succeeded(endpoint)
            self._routed.labels(self._caller, pool, method).inc()
            return result
        assert last is not None  # plan() always names at least the CPU pool
        raise last

    async def stream(
        self, method: str, call: Callable[[LanguageServiceAsyncStub], AsyncIterable[R]]
    ) -> AsyncIterator[R]:
        """A server stream: moves on only while nothing of it has reached the caller."""
        if not self._described:
            self._described = True
            await self.describe_gpu()
        last: grpc.aio.AioRpcError | None = None
        for pool, balancer, endpoint in self.plan(method):
            delivered = False
            with balancer.track(endpoint):
                try:
                    async for item in call(endpoint.target.language):
                        delivered = True
                        yield item
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in EJECTING_CODES:
                        raise
                    balancer.failed(endpoint)
                    if delivered:
                        raise
                    last = exc
                    continue
            balancer.succeeded(endpoint)
            self._routed.labels(self._caller, pool, method).inc()
            return
        assert last is not None
        raise last

    async def start(self) -> None:
        return None

    async def stop(self, grace_s: float) -> None:
        """Stops the probes still running (a component of the planner)."""
        await self.gpu.close()
        await self.cpu.close()
