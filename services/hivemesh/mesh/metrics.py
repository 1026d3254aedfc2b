"""Prometheus metrics: one registry per process.

RPCs follow Prometheus' gRPC conventions (``grpc_server_handled_total``,
``grpc_server_handling_seconds``, the labels of go-grpc-prometheus and grpc-java), model calls the
OpenTelemetry GenAI metrics (``gen_ai_client_token_usage``, ``gen_ai_client_operation_duration_seconds``);
tasks, tools, the queue and the SQL writers have ``hivemesh_*`` names; the process and Python
runtime collectors (``process_*``, ``python_*``) are registered too. Latency histograms carry
exemplars (the trace id) when spans are recorded, shown to a scraper that asks for OpenMetrics."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from hivemesh.common.v1.release_pb2 import Release
from hivemesh.common.v1.task_pb2 import TaskState
from hivemesh.mesh import sql
from hivemesh.mesh.config import ReleaseConfig
from hivemesh.mesh.telemetry import current_trace_id, recording

_log = logging.getLogger(__name__)

# The ``state`` label of a task that ended: its state's name without the prefix ("COMPLETED").
_STATE_LABELS = {value: name.removeprefix("TASK_STATE_") for name, value in TaskState.items()}


def state_label(state: TaskState.ValueType) -> str:
    """A task state as the task metrics (and the run's span) name it: ``COMPLETED``."""
    return _STATE_LABELS[state]


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
        # The default registry's collectors of process and runtime figures (CPU, memory, file
        # descriptors, garbage collection), read at scrape time.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.rpc_total = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by type, service, method, final status code and release.",
            ["grpc_type", "grpc_service", "grpc_method", "grpc_code", "release"],
            registry=self.registry,
        )
        self.rpc_duration = Histogram(
            "grpc_server_handling_seconds",
            "Time to handle an RPC (to the end of the stream for streaming RPCs), by release.",
            ["grpc_type", "grpc_service", "grpc_method", "release"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.tool_calls = Counter(
            "hivemesh_tool_calls",
            "Tool calls run by the tool service, by tool and outcome (OK or the error's status code).",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self.tool_duration = Histogram(
            "hivemesh_tool_duration_seconds",
            "Time to run a tool call (a replayed idempotent call included), by tool.",
            ["tool"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per call to a model, by operation, provider, requested model and token type "
            "(input or output); the sum over time is the tokens used.",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"],
            buckets=(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576),
            registry=self.registry,
        )
        self.model_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Time of a call to a model (to the end of its stream), by operation, provider, requested "
            "model and error type (empty when it succeeded).",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"],
            buckets=(0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92),
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
            "Time from a task's submission to its end, by final state and the release of the "
            "planner that ended it.",
            ["state", "release"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "hivemesh_queue_depth", "Tasks waiting in the queue.", registry=self.registry
        )
        self.dead_letters = Gauge(
            "hivemesh_dead_letters", "Tasks in the dead-letter queue.", registry=self.registry
        )
        self.language_routed = Counter(
            "hivemesh_language_routed_calls",
            "Language calls routed over the GPU and CPU pools, by caller (planner, memory), the pool "
            "that answered (gpu, cpu) and method.",
            ["caller", "pool", "method"],
            registry=self.registry,
        )
        self.registry.register(_SqlWrites())
        self._tool_calls: dict[tuple[str, str], Counter] = {}
        self._tool_timers: dict[str, Histogram] = {}

    def count_task_end(self, state: TaskState.ValueType, release: Release | None) -> None:
        label = _STATE_LABELS[state]
        self.tasks_total.labels(label).inc()
        for part in release.parts if release is not None else ():
            self.tasks_by_release.labels(part.service, part.label, label).inc()

    def count_tool_call(self, tool: str, outcome: str, seconds: float) -> None:
        # Label lookups take a lock and a dict walk each: the children are cached (tools are few).
        calls = self._tool_calls.get((tool, outcome))
        if calls is None:
            calls = self._tool_calls[(tool, outcome)] = self.tool_calls.labels(tool, outcome)
        calls.inc()
        timer = self._tool_timers.get(tool)
        if timer is None:
            timer = self._tool_timers[tool] = self.tool_duration.labels(tool)
        timer.observe(seconds, _exemplar())

    def count_model_call(
        self,
        operation: str,
        provider: str,
        model: str,
        seconds: float,
        *,
        error_type: str = "",
        tokens: tuple[int, int] | None = None,
    ) -> None:
        """One call to a model: its duration, and its (input, output) tokens when it finished."""
        self.model_duration.labels(operation, provider, model, error_type).observe(seconds, _exemplar())
        if tokens is not None:
            self.token_usage.labels(operation, provider, model, "input").observe(tokens[0])
            self.token_usage.labels(operation, provider, model, "output").observe(tokens[1])

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


def _exemplar() -> dict[str, str] | None:
    """The current trace id as an exemplar, when a span is being recorded."""
    trace_id = current_trace_id() if recording() else ""
    return {"trace_id": trace_id} if trace_id else None
