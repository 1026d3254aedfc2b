"""What the console's service map reads: the health of each service (``grpc.health.v1``, which
needs no credential) and, when the console runs in the process of the services (``hivemesh up``),
the counters of the RPCs they answered.

The console keeps no history: ``GET /api/metrics`` returns the counters as they are now, and the
page computes requests/s, error rate and p99 over the last minute from the snapshots it took.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hivemesh.mesh import tls as transport
from hivemesh.mesh.config import TlsConfig
from hivemesh.mesh.metrics import Metrics

# Longest a health check of one service may take before it counts as unreachable.
HEALTH_TIMEOUT_S = 1.0
_STATUS = {
    health_pb2.HealthCheckResponse.SERVING: "serving",
    health_pb2.HealthCheckResponse.NOT_SERVING: "not_serving",
    health_pb2.HealthCheckResponse.SERVICE_UNKNOWN: "unknown",
}


class ServiceMap:
    """Health of the services at ``addresses`` and the RPC counters of ``metrics`` (None when the
    services run in other processes: their figures are then on their own ``/metrics``)."""

    def __init__(self, addresses: Mapping[str, str], tls: TlsConfig | None, metrics: Metrics | None) -> None:
        self._addresses = dict(addresses)
        self._tls = tls
        self._metrics = metrics
        self._channels: dict[str, grpc.aio.Channel] = {}

    def listening_on(self, service: str, port: int) -> None:
        """``service`` listens on ``port`` of its configured host (a server of this process, which
        may have bound port 0)."""
        host = self._addresses.get(service, "127.0.0.1:0").rsplit(":", 1)[0]
        self._addresses[service] = f"{host}:{port}"

    def _channel(self, address: str) -> grpc.aio.Channel:
        # One channel per address, opened on first use by the event loop that serves the console.
        if address not in self._channels:
            self._channels[address] = (
                grpc.aio.insecure_channel(address)
                if self._tls is None
                else grpc.aio.secure_channel(
                    address,
                    transport.channel_credentials(self._tls, require_identity=False),
                    options=transport.channel_options(self._tls),
                )
            )
        return self._channels[address]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()

    async def _check(self, address: str, name: str) -> str:
        stub = health_pb2_grpc.HealthStub(self._channel(address))
        try:
            response = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=HEALTH_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            return "unreachable"
        return _STATUS.get(response.status, "unknown")

    async def _health(self, service: str, address: str) -> dict[str, str]:
        live, ready = await asyncio.gather(
            self._check(address, "liveness"), self._check(address, "readiness")
        )
        return {"service": service, "address": address, "liveness": live, "readiness": ready}

    async def health(self, request: Request) -> Response:
        found = await asyncio.gather(*(self._health(s, a) for s, a in self._addresses.items()))
        return JSONResponse({"services": list(found)})

    async def metrics(self, request: Request) -> Response:
        """The RPC counters now: requests by service, method and status code, and the duration
        histogram's cumulative buckets by service and method."""
        if self._metrics is None:
            return JSONResponse({"available": False, "time": time.time(), "requests": [], "durations": []})
        requests: list[dict[str, Any]] = []
        for family in self._metrics.rpc_total.collect():
            requests.extend(
                {
                    "service": sample.labels["grpc_service"],
                    "method": sample.labels["grpc_method"],
                    "code": sample.labels["grpc_code"],
                    "count": sample.value,
                }
                for sample in family.samples
                if sample.name.endswith("_total")
            )
        buckets: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for family in self._metrics.rpc_duration.collect():
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    key = (sample.labels["grpc_service"], sample.labels["grpc_method"])
                    buckets.setdefault(key, []).append((float(sample.labels["le"]), sample.value))
        # The last bucket's bound is +Inf, which JSON cannot say: null.
        durations = [
            {
                "service": service,
                "method": method,
                "buckets": [[None if math.isinf(le) else le, count] for le, count in sorted(found)],
            }
            for (service, method), found in buckets.items()
        ]
        return JSONResponse(
            {"available": True, "time": time.time(), "requests": requests, "durations": durations}
        )
