"""Task queue throughput and takeover time on each adapter: ``python -m benchmarks.queue``.

For SQLite (embedded), PostgreSQL (SQL queue, FOR UPDATE SKIP LOCKED) and Redis Streams (log in
PostgreSQL): tasks per second through submit -> claim -> record the outcome -> acknowledge with
several concurrent consumers, and the time from SIGKILL of a worker holding a task until another
worker has claimed it again (bounded below by the visibility timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskEvent
from hivemesh.mesh.config import Settings
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.system import TaskSystem
from tests.tasks.stores import REDIS_URL, postgres_database, redis_prefix

ROOT = Path(__file__).resolve().parents[2]


def new_task(number: int) -> Task:
    return Task(
        task_id=uuid.uuid4().hex,
        scope=Scope(tenant_id="bench", user_id="u", session_id="s"),
        request_id=f"bench-{number}-{uuid.uuid4().hex[:6]}",
        input_text="bench",
    )


@asynccontextmanager
async def adapter(name: str, base: Settings) -> AsyncIterator[tuple[TaskSystem, dict[str, str]]]:
    """The task system on one adapter, and the environment a worker process needs to join it."""
    env = {**os.environ, "HIVEMESH_DATA_DIR": str(base.data_dir), "HIVEMESH_METRICS_PORT": "off"}
    env.pop("HIVEMESH_REDIS_URL", None)
    env.pop("HIVEMESH_DATABASE_URL", None)
    if name == "sqlite":
        tasks = TaskSystem(base, TaskConfig(sweep_interval_s=0))
        await tasks.start()
        try:
            yield tasks, env
        finally:
            await tasks.stop(0)
        return
    async with postgres_database() as url, redis_prefix() as prefix:
        settings = replace(base, database_url=url, redis_url=REDIS_URL if name == "redis" else None)
        env["HIVEMESH_DATABASE_URL"] = url
        if name == "redis":
            env["HIVEMESH_REDIS_URL"] = REDIS_URL
            env["HIVEMESH_REDIS_PREFIX"] = prefix
        tasks = TaskSystem(settings, TaskConfig(redis_prefix=prefix, sweep_interval_s=0))
        await tasks.start()
        try:
            yield tasks, env
        finally:
            await tasks.stop(0)


async def throughput(tasks: TaskSystem, count: int, consumers: int) -> tuple[float, float]:
    """(submits per second, tasks per second end to end)."""
    started = time.perf_counter()
    for number in range(count):
        await tasks.submit(new_task(number), trace={})
    submitted = time.perf_counter() - started
    done = 0

    async def consume(worker: str) -> None:
        nonlocal done
        while done < count:
            claim = await tasks.queue.claim(worker, 30)
            if claim is None:
                await asyncio.sleep(0.001)
                continue
            finished = TaskEvent()
            finished.completed.answer = "ok"
            await tasks.log.append(claim.task_id, finished)
            await tasks.queue.ack(claim.task_id, worker)
            done += 1

    await asyncio.gather(*(consume(f"w{i}") for i in range(consumers)))
    total = time.perf_counter() - started
    return count / submitted, count / total


async def takeover(tasks: TaskSystem, env: dict[str, str], visibility_s: float) -> float:
    """Seconds from SIGKILL of the worker holding a task until another worker holds it."""
    await tasks.submit(new_task(0), trace={})
    holder = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
        [sys.executable, "-m", "benchmarks.queue.holder"],
        env={**env, "HIVEMESH_VISIBILITY_TIMEOUT": str(visibility_s), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    task_id = await asyncio.to_thread(holder.stdout.readline)
    await asyncio.sleep(visibility_s)  # the holder has renewed its claim at least twice
    holder.send_signal(signal.SIGKILL)
    killed = time.perf_counter()
    holder.wait()
    while (claim := await tasks.queue.claim("survivor", visibility_s)) is None:  # noqa: ASYNC110 - a worker polls
        await asyncio.sleep(0.01)
    assert claim.task_id == task_id.strip()
    return time.perf_counter() - killed


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.queue")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--consumers", type=int, default=8)
    parser.add_argument("--visibility-timeout", type=float, default=1.0)
    parser.add_argument("--adapters", default="sqlite,postgres,redis")
    args = parser.parse_args()
    print(
        f"{'adapter':<10} {'submit/s':>10} {'tasks/s':>10} {'takeover s':>11}  "
        f"({args.tasks} tasks, {args.consumers} consumers, visibility timeout {args.visibility_timeout}s)"
    )
    for name in args.adapters.split(","):
        with tempfile.TemporaryDirectory() as directory:
            base = Settings.from_env({"HIVEMESH_DATA_DIR": directory, "HIVEMESH_METRICS_PORT": "off"})
            async with adapter(name, base) as (tasks, env):
                submit_rate, end_to_end = await throughput(tasks, args.tasks, args.consumers)
                resumed = await takeover(tasks, env, args.visibility_timeout)
        print(f"{name:<10} {submit_rate:>10.0f} {end_to_end:>10.0f} {resumed:>11.2f}")


if __name__ == "__main__":
    asyncio.run(main())
