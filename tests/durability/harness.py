"""Stores, a tool service, worker pools and worker processes for the durability tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.common.v1.task_pb2 import Task
from hivemesh.mesh.bulkhead import WaitingBulkhead
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer
from hivemesh.mesh.sql import make_engine, sqlite_url
from hivemesh.planner.clients import GrpcTools
from hivemesh.planner.runner import BuiltinRunner
from hivemesh.planner.worker import WorkerPool
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.projection import is_terminal
from hivemesh.tasks.system import TaskSystem
from tests.durability.agent import NoMemory, ScriptedLanguage, Switch, create_effects, tool_app
from tests.tasks.stores import REDIS_URL, postgres_database, redis_prefix

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stores:
    """Where one test's tasks, tool idempotency keys and counted side effects live."""

    settings: Settings
    config: TaskConfig
    tool_database_url: str
    effects: AsyncEngine

    @property
    def env(self) -> dict[str, str]:
        """The same configuration as environment variables, for worker processes."""
        env = {
            **os.environ,
            "HIVEMESH_DATA_DIR": str(self.settings.data_dir),
            "HIVEMESH_METRICS_PORT": "off",
            "HIVEMESH_REDIS_PREFIX": self.config.redis_prefix,
            "HIVEMESH_VISIBILITY_TIMEOUT": str(self.config.visibility_timeout_s),
            "HIVEMESH_MAX_ATTEMPTS": str(self.config.max_attempts),
            "HIVEMESH_TASK_DEADLINE": str(self.settings.task_deadline_s),
            "HIVEMESH_TOOL_ADDR": self.settings.addresses["tool"],
            # The test's own import path after the repository's, so the worker runs the same code.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        for name, value in (
            ("HIVEMESH_DATABASE_URL", self.settings.database_url),
            ("HIVEMESH_REDIS_URL", self.settings.redis_url),
        ):
            if value:
                env[name] = value
            else:
                env.pop(name, None)
        return env


@contextlib.asynccontextmanager
async def stores(
    settings: Settings, *, distributed: bool, redis_url: str = REDIS_URL, max_attempts: int = 3
) -> AsyncIterator[Stores]:
    """Embedded: SQLite files. Distributed: a fresh PostgreSQL database and a Redis key prefix."""
    settings = replace(settings, task_deadline_s=300.0)
    queue = TaskConfig(visibility_timeout_s=2.0, max_attempts=max_attempts)
    if not distributed:
        tool_url = sqlite_url(settings.data_dir / "tool.db")
        effects = make_engine(sqlite_url(settings.data_dir / "effects.db"))
        await create_effects(effects)
        try:
            yield Stores(settings, replace(queue, sweep_interval_s=0), tool_url, effects)
        finally:
            await effects.dispose()
        return
    async with postgres_database() as url, redis_prefix(redis_url) as prefix:
        effects = make_engine(url, pool_size=4)
        await create_effects(effects)
        try:
            yield Stores(
                replace(settings, database_url=url, redis_url=redis_url),
                replace(queue, redis_prefix=prefix, sweep_interval_s=1.0),
                url,
                effects,
            )
        finally:
            await effects.dispose()


@contextlib.asynccontextmanager
async def tool_service(store: Stores, switch: Switch, *, work_s: float = 0.02) -> AsyncIterator[Stores]:
    """The real tool service with the counting calculator; ``Stores`` gets its address."""
    server = MeshServer(
        tool_app(store.settings, store.tool_database_url, store.effects, switch, work_s=work_s),
        store.settings.server,
        0,
        Metrics(),
    )
    await server.start()
    try:
        yield replace(store, settings=store.settings.with_ports(tool=server.port))
    finally:
        await server.stop(0.5)


@contextlib.asynccontextmanager
async def worker_pool(
    store: Stores,
    tasks: TaskSystem,
    *,
    concurrency: int = 4,
    language: Callable[[], ScriptedLanguage] = ScriptedLanguage,
) -> AsyncIterator[WorkerPool]:
    """A worker pool in this process (as `hivemesh serve planner` runs one)."""
    channels = ChannelFactory(store.settings)
    bulkhead = WaitingBulkhead("tool", 16)
    pool = WorkerPool(
        tasks,
        lambda: BuiltinRunner(language(), NoMemory(), GrpcTools(channels, bulkhead)),
        store.settings,
        Metrics(),
        concurrency=concurrency,
        queue=store.config,
    )
    await pool.start()
    try:
        yield pool
    finally:
        await pool.stop(1.0)
        await channels.close()


@contextlib.asynccontextmanager
async def task_system(store: Stores) -> AsyncIterator[TaskSystem]:
    tasks = TaskSystem(store.settings, store.config)
    await tasks.start()
    try:
        yield tasks
    finally:
        await tasks.stop(0)


class WorkerProcess:
    """``python -m tests.durability.worker_main`` with the test's configuration."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.durability.worker_main"], env=env, cwd=ROOT, stderr=out
            )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


async def until(predicate: Callable[[], object], *, timeout_s: float, what: str) -> None:
    """Poll an async predicate until it holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.1)


async def ended(tasks: TaskSystem, task_id: str) -> Task | None:
    task = await tasks.log.get(task_id)
    return task if task is not None and is_terminal(task.state) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """Our own redis-server on a free port, persisting with an append-only file (fsync always)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
