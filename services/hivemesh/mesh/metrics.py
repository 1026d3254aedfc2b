"""Prometheus metrics: per-RPC count, errors by code and duration, plus queue gauges."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from hivemesh.common.v1.release_pb2 import Release
from hivemesh.common.v1.task_pb2 import TaskState
from hivemesh.mesh import sql
from hivemesh.mesh.config import ReleaseConfig

_log = logging.getLogger(__name__)

# The ``state`` label of a task that ended: its state's name without the prefix ("COMPLETED").
_STATE_LABELS = {value: name.removeprefix("TASK_STATE_") for name, value in TaskState.items()}


class _SqlWrites(Collector):
    """The group-commit writers' tallies, read at scrape time."""

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "hivemesh_sql_transactions",
            "Write transactions committed by this process's group-commit writers (all stores).",
            value=sql.transactions_committed(),
        )
        yield CounterMetricFamily(
            "hivemesh_sql_write_operations",
            "Write operations those transactions carried (operations / transactions = batch size).",
            value=sql.operations_committed(),
        )


class Metrics:
    """One registry per process, shared by every service the process runs. ``release`` is the
    process's release label (``ReleaseConfig.label``): the RPC series carry it, so a canary's
    latency and errors can be compared with the stable side's."""

    def __init__(self, release: str | None = None) -> None:
        self.release = ReleaseConfig().label if release is None else release
        self.registry = CollectorRegistry()
        self.rpc_total = Counter(
            "hivemesh_rpc_requests",
            "RPCs handled, by service, method, final status code and release.",
            ["service", "method", "code", "release"],
            registry=self.registry,
        )
        self.rpc_duration = Histogram(
            "hivemesh_rpc_duration_seconds",
            "Time to handle an RPC (to the end of the stream for streaming RPCs), by release.",
            ["service", "method", "release"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.tasks_total = Counter(
            "hivemesh_tasks", "Tasks that ended, by final state.", ["state"], registry=self.registry
        )
        self.tasks_by_release = Counter(
            "hivemesh_tasks_by_release",
            "Tasks that ended, by final state and by the release of each service the run used "
            "(one count per service part of the task's release).",
            ["service", "release", "state"],
            registry=self.registry,
        )
        self.task_duration = Histogram(
            "hivemesh_task_duration_seconds",
            "Time from a task's submission to its end, by the release of the planner that ended it.",
            ["release"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "hivemesh_queue_depth", "Tasks waiting in the queue.", registry=self.registry
        )
        self.dead_letters = Gauge(
            "hivemesh_dead_letters", "Tasks in the dead-letter queue.", registry=self.registry
        )
        self.registry.register(_SqlWrites())

    def count_task_end(self, state: TaskState.ValueType, release: Release | None) -> None:
        label = _STATE_LABELS[state]
        self.tasks_total.labels(label).inc()
        for part in release.parts if release is not None else ():
            self.tasks_by_release.labels(part.service, part.label, label).inc()

    def watch_queue(self, depth: Callable[[], float], dead: Callable[[], float]) -> None:
        """Read queue gauges at scrape time from the given (cheap, cached) callables."""
        self.queue_depth.set_function(depth)
        self.dead_letters.set_function(dead)

    def serve(self, port: int, host: str) -> int:
        """Expose /metrics; returns the bound port (useful with port 0)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(server.server_port)
        _log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound
