"""Wiring of the tool service: registry (built-ins, then MCP servers), idempotency store, executor."""

from __future__ import annotations

import multiprocessing
import random
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from hivemesh.common.v1.release_pb2 import ReleasePart
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.credentials import guard_for
from hivemesh.mesh.instance import successor_name
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import Component, ServiceApp
from hivemesh.mesh.sql import sqlite_url
from hivemesh.tasks.config import TaskConfig
from hivemesh.tool.builtins import discover
from hivemesh.tool.config import ToolConfig
from hivemesh.tool.executor import ExecutionPolicy, Executor
from hivemesh.tool.memory_records import MemoryRecords
from hivemesh.tool.model import Tool, ToolDeps, ToolSource
from hivemesh.tool.pool import PoolSize
from hivemesh.tool.ports import RecordStore, ReminderScheduler
from hivemesh.tool.registry import Registry
from hivemesh.tool.scheduling import LoggingScheduler, TaskReminderScheduler
from hivemesh.tool.servicer import ToolServicer
from hivemesh.tool.stores.sql import SqlIdempotencyStore
from hivemesh.tool.v1.tool_service_pb2_grpc import add_ToolServiceServicer_to_server
from hivemesh.world import places

if TYPE_CHECKING:
    from hivemesh.tool.stores.redis import RedisIdempotencyStore


class CityIndexWarmUp:
    """Builds the city index of ``current_time`` at start in a child process: a second or two of
    work (much of it holding the interpreter lock) that would otherwise fall on the first request
    naming a city, inside its time limit, and on every call served meanwhile."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def start(self) -> None:
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        places.build_elsewhere(self._pool)

    async def stop(self, grace_s: float) -> None:
        if self._pool is not None:
            # A build still running is left to finish on its own; lookups then build in process.
            self._pool.shutdown(wait=False, cancel_futures=True)


def build(settings: Settings, channels: ChannelFactory, metrics: Metrics) -> ServiceApp:
    scheduler = TaskReminderScheduler(settings, TaskConfig.from_env())
    app = build_app(settings, channels, ToolConfig.from_env(), scheduler=scheduler, metrics=metrics)
    app.components = [scheduler, *app.components]
    return app


def build_app(
    settings: Settings,
    channels: ChannelFactory,
    config: ToolConfig,
    *,
    scheduler: ReminderScheduler | None = None,
    records: RecordStore | None = None,
    extra_tools: Iterable[Tool] = (),
    sources: Iterable[ToolSource] = (),
    clock: Callable[[], datetime] | None = None,
    metrics: Metrics | None = None,
) -> ServiceApp:
    """The tool service; ``scheduler`` is where reminders go when due (the task queue's delivery).
    ``sources`` add tool sets that may change while the service runs, as MCP servers' do; calls
    are counted and timed per tool in ``metrics``."""
    registry = Registry([*discover(), *extra_tools], sources)
    components: list[Component] = [CityIndexWarmUp()]
    store = idempotency_store(settings, config)
    components.append(store)
    if config.mcp_servers is not None:
        # Imported only when configured: the MCP SDK is the optional extra hivemesh[mcp].
        from hivemesh.tool.mcpbridge.bridge import McpBridge  # noqa: PLC0415
        from hivemesh.tool.mcpbridge.config import load_servers  # noqa: PLC0415

        bridge = McpBridge(load_servers(config.mcp_servers))
        registry.add_source(bridge)
        components.append(bridge)
    deps = ToolDeps(
        records=records or MemoryRecords(lambda: channels.channel("memory")),
        scheduler=scheduler or LoggingScheduler(),
        random=random.Random(config.random_seed) if config.random_seed is not None else random.SystemRandom(),  # noqa: S311 - dice, not secrets
    )
    if clock is not None:
        deps = ToolDeps(deps.records, deps.scheduler, clock, deps.random)
    workers = PoolSize(processes=config.worker_processes, threads=config.worker_threads)
    executor = Executor(
        registry,
        deps,
        store,
        ExecutionPolicy(idempotency_ttl_s=config.idempotency_ttl_s, workers=workers),
        metrics=metrics,
    )
    servicer = ToolServicer(registry, executor)

    def describe(part: ReleasePart) -> None:
        part.tool_catalogue_version = registry.catalogue().version

    return ServiceApp(
        name="tool",
        guard=guard_for(settings, "tool"),
        register=lambda server: add_ToolServiceServicer_to_server(servicer, server),
        describe=describe,
        # Last, so it stops first: calls still running finish before the stores close.
        components=[*components, executor],
    )


def idempotency_store(settings: Settings, config: ToolConfig) -> SqlIdempotencyStore | RedisIdempotencyStore:
    """Redis when configured (shared by every replica), else the SQL database, else SQLite."""
    if settings.redis_url:
        # Imported only when configured: the redis client is the optional extra hivemesh[distributed].
        from hivemesh.tool.stores.redis import RedisIdempotencyStore  # noqa: PLC0415

        return RedisIdempotencyStore(
            settings.redis_url, config.redis_prefix, name=successor_name(settings, "tool")
        )
    url = settings.database_url or sqlite_url(settings.data_dir / "tool.db")
    return SqlIdempotencyStore(url, name=successor_name(settings, "tool"))
