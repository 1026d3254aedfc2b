"""What the console's service map and tool catalogue read: the health of each service
(``grpc.health.v1``, which needs no credential) and, when the console runs in the process of the
services (``hivemesh up``), the counters of the RPCs they answered and of the tool calls they ran;
elsewhere (a cluster) the tool calls' counters read from the tool service's Prometheus ``/metrics``
at the URLs configured (``HIVEMESH_CONSOLE_TOOL_METRICS_URL``; several replicas are added up).

The console keeps no history: ``GET /api/metrics`` returns the counters as they are now, and the
page computes requests/s, error rate and p99 over the last minute from the snapshots it took.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hivemesh.mesh import tls as transport
from hivemesh.mesh.config import TlsConfig
from hivemesh.mesh.metrics import Metrics

# Longest a health check of one service may take before it counts as unreachable.
HEALTH_TIMEOUT_S = 1.0
# Longest a read of a tool service's /metrics may take, and the most of it read.
SCRAPE_TIMEOUT_S = 2.0
MAX_SCRAPE_BYTES = 4 * 1024 * 1024
_TOOL_CALLS = "hivemesh_tool_calls"
_TOOL_DURATION = "hivemesh_tool_duration_seconds"
log = logging.getLogger(__name__)
_STATUS = {
    health_pb2.HealthCheckResponse.SERVING: "serving",
    health_pb2.HealthCheckResponse.NOT_SERVING: "not_serving",
    health_pb2.HealthCheckResponse.SERVICE_UNKNOWN: "unknown",
}


class ServiceMap:
    """Health of the services at ``addresses`` and the RPC counters of ``metrics`` (None when the
    services run in other processes: their figures are then on their own ``/metrics``, and the tool
    calls' figures are read from ``tool_metrics_urls`` when there are any)."""

    def __init__(
        self,
        addresses: Mapping[str, str],
        tls: TlsConfig | None,
        metrics: Metrics | None,
        tool_metrics_urls: Sequence[str] = (),
    ) -> None:
        self._addresses = dict(addresses)
        self._tls = tls
        self._metrics = metrics
        self._tool_metrics_urls = tuple(tool_metrics_urls)
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
        """The counters now: RPCs by service, method and status code, and their duration
        histogram's cumulative buckets by service and method; tool calls by tool and outcome, and
        their duration histogram by tool (with its sum, for the mean since the process started)."""
        if self._metrics is None and self._tool_metrics_urls:
            return JSONResponse(await self._scraped_tools())
        if self._metrics is None:
            return JSONResponse(
                {
                    "available": False,
                    "time": time.time(),
                    "requests": [],
                    "durations": [],
                    "tools": [],
                    "tool_durations": [],
                }
            )
        requests = [
            {
                "service": labels["grpc_service"],
                "method": labels["grpc_method"],
                "code": labels["grpc_code"],
                "count": value,
            }
            for labels, value in _counts(self._metrics.rpc_total.collect())
        ]
        durations = [
            {"service": key[0], "method": key[1], "buckets": found.buckets}
            for key, found in _histograms(
                self._metrics.rpc_duration.collect(), "grpc_service", "grpc_method"
            ).items()
        ]
        tools, tool_durations = _tool_figures(
            list(self._metrics.tool_calls.collect()), list(self._metrics.tool_duration.collect())
        )
        return JSONResponse(
            {
                "available": True,
                "time": time.time(),
                "requests": requests,
                "durations": durations,
                "tools": tools,
                "tool_durations": tool_durations,
            }
        )

    async def _scrape(self, client: httpx.AsyncClient, url: str) -> list[Metric] | str:
        """The metric families at ``url``, or why they could not be read."""
        try:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    return f"{url} answered HTTP {response.status_code}"
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_SCRAPE_BYTES:
                        return f"{url} answered more than {MAX_SCRAPE_BYTES} bytes"
            return list(text_string_to_metric_families(body.decode("utf-8", errors="replace")))
        except (httpx.HTTPError, ValueError) as exc:
            return f"{url}: {type(exc).__name__}: {exc}"

    async def _scraped_tools(self) -> dict[str, Any]:
        """The tool figures of every tool service at the configured URLs, added up: only the
        tool calls (``tools_only``), the RPC figures of the other services are not there."""
        async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S) as client:
            found = await asyncio.gather(*(self._scrape(client, url) for url in self._tool_metrics_urls))
        problems = [f for f in found if isinstance(f, str)]
        families = [family for f in found if not isinstance(f, str) for family in f]
        for problem in problems:
            log.warning("tool figures: %s", problem)
        calls = [f for f in families if f.name == _TOOL_CALLS]
        durations = [f for f in families if f.name == _TOOL_DURATION]
        tools, tool_durations = _tool_figures(calls, durations)
        return {
            "available": len(problems) < len(found),
            "tools_only": True,
            "time": time.time(),
            "requests": [],
            "durations": [],
            "tools": tools,
            "tool_durations": tool_durations,
            "sources": len(found) - len(problems),
            "unreachable": problems,
        }


def _tool_figures(
    calls: Iterable[Metric], durations: Iterable[Metric]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Tool calls by tool and outcome, and their duration histogram by tool (children that differ
    only in other labels, or come from several replicas, added up)."""
    counts: dict[tuple[str, str], float] = {}
    for labels, value in _counts(calls):
        key = (labels["tool"], labels["outcome"])
        counts[key] = counts.get(key, 0.0) + value
    tools = [{"tool": tool, "outcome": outcome, "count": n} for (tool, outcome), n in sorted(counts.items())]
    tool_durations = [
        {"tool": key[0], "buckets": found.buckets, "sum": found.total, "count": found.count}
        for key, found in _histograms(durations, "tool").items()
    ]
    return tools, tool_durations


def _counts(families: Iterable[Metric]) -> list[tuple[dict[str, str], float]]:
    """Each labelled child of a counter's ``families``: its labels and its count."""
    return [
        (sample.labels, sample.value)
        for family in families
        for sample in family.samples
        if sample.name.endswith("_total")
    ]


@dataclass
class _Histogram:
    # Cumulative buckets, [upper bound, count]; the last bound is +Inf, which JSON cannot say: None.
    buckets: list[list[float | None]] = field(default_factory=list)
    # Seconds observed in all, and how many observations.
    total: float = 0.0
    count: float = 0.0


def _histograms(families: Iterable[Metric], *names: str) -> dict[tuple[str, ...], _Histogram]:
    """The children of ``histogram`` by the values of the labels ``names`` (children that differ
    only in other labels, such as the release, are added up)."""
    found: dict[tuple[str, ...], _Histogram] = {}
    bounds: dict[tuple[str, ...], dict[float, float]] = {}
    for family in families:
        for sample in family.samples:
            key = tuple(sample.labels[name] for name in names)
            into = found.setdefault(key, _Histogram())
            if sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                counts = bounds.setdefault(key, {})
                counts[le] = counts.get(le, 0.0) + sample.value
            elif sample.name.endswith("_sum"):
                into.total += sample.value
            elif sample.name.endswith("_count"):
                into.count += sample.value
    for key, counts in bounds.items():
        found[key].buckets = [[None if math.isinf(le) else le, n] for le, n in sorted(counts.items())]
    return found
