"""Steady open-loop traffic through the replicated topology, a rolling restart of every replica of
every service in the middle of it, then an audit of the task log: every task the clients started
completed exactly once, nothing is dead-lettered, and each task's tool call ran exactly once.

Latency is from the moment a task was sent until its stream delivered the outcome. Tasks are put in
the phase in which they were sent: ``steady`` before the first restart began, ``rolling`` from then
until the last replaced replica had exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.rolling.fleet import ROOT, Fleet, FleetError, Rolled, tail
from hivemesh.client import HivemeshClient
from hivemesh.common.v1.task_pb2 import TaskEvent, TaskState
from hivemesh.loadgen import outcome_of, percentile
from hivemesh.mesh.config import SERVICES, Settings
from hivemesh.mesh.credentials import ensure_keys
from hivemesh.mesh.launch import START_ORDER
from hivemesh.mesh.sql import make_engine
from hivemesh.mesh.status import details_of
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.system import TaskSystem
from tests.durability.agent import create_effects, effect_counts
from tests.tasks.stores import REDIS_URL, postgres_database, redis_prefix

# After the traffic stops, how long tasks still queued or running get to end before the audit.
AUDIT_WAIT_S = 60.0
_OPEN = (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Options:
    # Tasks sent per second, whatever happens to earlier ones (an open loop).
    rate: float = 10.0
    # Seconds of traffic before the first restart, and after the last.
    steady_s: float = 20.0
    tail_s: float = 5.0
    replicas: int = 2
    # Client connections the tasks take turns on (the kernel gives each to one gateway replica).
    connections: int = 4
    # How long a client keeps resuming a dropped stream (HivemeshClient.execute); 0 reports the
    # first error instead.
    patience_s: float = 30.0
    task_timeout_s: float = 60.0
    # After SIGTERM, in-flight calls and running tasks get this long; readiness is NOT_SERVING
    # for the shutdown delay before the listener closes.
    grace_s: float = 5.0
    shutdown_delay_s: float = 0.0
    # Seconds each tool call works before its side effect: above ``grace_s``, calls, streams and
    # runs in flight on a stopping replica are cut and must be resumed elsewhere.
    tool_work_s: float = 0.02
    progress: bool = True


@dataclass
class Sent:
    """One task as its client saw it."""

    number: int
    at: float
    latency_s: float = 0.0
    task_id: str = ""
    error: str = ""
    # Completed with an answer that is not its own task's (the calculator echoes the expression).
    wrong: bool = False


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    sent: int
    completed: int
    failed: int
    wrong: int
    tasks_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class Result:
    phases: list[Phase]
    rolled: list[Rolled]
    # What the clients saw: errors by kind over the whole run.
    errors: dict[str, int]
    audit: Audit

    @property
    def sent(self) -> int:
        return sum(p.sent for p in self.phases)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


def _phase(name: str, sent: list[Sent], seconds: float) -> Phase:
    ok = sorted(s.latency_s for s in sent if not s.error)
    return Phase(
        name=name,
        seconds=seconds,
        sent=len(sent),
        completed=len(ok),
        failed=sum(1 for s in sent if s.error),
        wrong=sum(1 for s in sent if s.wrong),
        tasks_per_s=len(ok) / seconds if seconds > 0 else 0.0,
        p50_ms=percentile(ok, 0.50) * 1000,
        p95_ms=percentile(ok, 0.95) * 1000,
        p99_ms=percentile(ok, 0.99) * 1000,
        max_ms=(ok[-1] if ok else float("nan")) * 1000,
    )


def expression(number: int) -> str:
    """The arithmetic of task ``number``: different for every task of a run."""
    return f"{1000 + number} * 3 + {number % 7 + 1}"


async def _send(client: HivemeshClient, options: Options, run: str, sent: Sent) -> None:
    last: TaskEvent | None = None
    try:
        async for event in client.execute(
            f"what is {expression(sent.number)}?",
            user_id=f"roll-{run}-{sent.number}",
            session_id="rolling",
            request_id=f"{run}-{sent.number}",
            timeout_s=options.task_timeout_s,
            patience_s=options.patience_s,
        ):
            sent.task_id = sent.task_id or event.task_id
            last = event
        outcome = outcome_of(last)
        sent.error = outcome.error
        sent.wrong = not outcome.error and expression(sent.number) not in outcome.answer
    except grpc.aio.AioRpcError as exc:
        details = details_of(exc)
        sent.error = f"{details.code.name} {details.reason}".strip()
    sent.latency_s = time.monotonic() - sent.at


async def _traffic(
    clients: list[HivemeshClient], options: Options, run: str, stop: asyncio.Event, sent: list[Sent]
) -> None:
    """Send ``options.rate`` tasks a second until ``stop``, then wait for those in flight."""
    began = time.monotonic()
    running: set[asyncio.Task[None]] = set()
    number = 0
    while not stop.is_set():
        due = began + number / options.rate
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
            break
        one = Sent(number, time.monotonic())
        sent.append(one)
        job = asyncio.create_task(_send(clients[number % len(clients)], options, run, one))
        running.add(job)
        job.add_done_callback(running.discard)
        number += 1
    if running:
        await asyncio.wait(running, timeout=options.task_timeout_s + 5)


async def _progress(sent: list[Sent], stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(5)
        done = [s for s in sent if s.latency_s]
        errors = sum(1 for s in done if s.error)
        _say(f"  {len(sent)} sent, {len(done) - errors} completed, {errors} failed")


def _base_env(data_dir: Path) -> dict[str, str]:
    """This environment without the caller's HIVEMESH_* settings, importing this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVEMESH_")}
    path = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(PYTHONPATH=os.pathsep.join(dict.fromkeys(path)), HIVEMESH_DATA_DIR=str(data_dir))
    return env


@contextlib.asynccontextmanager
async def _environment(workdir: Path, options: Options) -> AsyncIterator[tuple[dict[str, str], str]]:
    """A fresh database and Redis key prefix; yields the environment every replica runs with, and
    the prefix."""
    async with postgres_database() as database_url, redis_prefix() as prefix:
        keys = ensure_keys(workdir / "data")
        env = {
            **_base_env(workdir / "data"),
            **{f"HIVEMESH_{s.upper()}_PORT": str(free_port()) for s in SERVICES},
            "HIVEMESH_DATABASE_URL": database_url,
            "HIVEMESH_REDIS_URL": REDIS_URL,
            "HIVEMESH_REDIS_PREFIX": prefix,
            "HIVEMESH_METRICS_PORT": "off",
            # Policy, not capacity: one tenant sends every task.
            "HIVEMESH_RATE_LIMIT": "0",
            "HIVEMESH_REUSE_PORT": "true",
            "HIVEMESH_GRACE_PERIOD": f"{options.grace_s}s",
            "HIVEMESH_SHUTDOWN_DELAY": f"{options.shutdown_delay_s}s",
            "HIVEMESH_MESH_SIGNING_KEY": str(keys.signing_key),
            "HIVEMESH_MESH_JWKS": str(keys.jwks),
            "DURABILITY_EFFECTS_URL": database_url,
            "DURABILITY_TOOL_WORK": str(options.tool_work_s),
        }
        yield env, prefix


async def _api_key(env: dict[str, str]) -> str:
    created = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hivemesh.cli", "keys", "create", "--tenant", "rolling", "--name", "rolling"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0:
        raise FleetError(f"hivemesh keys create failed: {created.stderr.strip()[-300:]}")
    return created.stdout.strip()


async def _roll(fleet: Fleet) -> list[Rolled]:
    rolled = []
    for service in START_ORDER:
        for slot in range(1, fleet.replicas + 1):
            done = await fleet.roll(service, slot)
            _say(f"  {done.label}: ready in {done.start_s:.1f}s, the old one drained in {done.drain_s:.1f}s")
            rolled.append(done)
    return rolled


async def measure(workdir: Path, options: Options) -> Result:
    """Start the fleet, send traffic, roll every replica, audit; the fleet is stopped at the end."""
    run = uuid.uuid4().hex[:8]
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    async with _environment(workdir, options) as (env, prefix):
        settings = Settings.from_env(env)
        effects = make_engine(settings.database_url or "", pool_size=2)
        fleet = Fleet(workdir, env, options.replicas)
        sent: list[Sent] = []
        try:
            await create_effects(effects)
            key = await _api_key(env)
            _say(f"starting {options.replicas} replicas of each service")
            await fleet.start()
            _say(f"up; {options.steady_s:g}s of traffic at {options.rate:g} tasks/s before the restarts")
            stop = asyncio.Event()
            async with contextlib.AsyncExitStack() as connected:
                clients = [
                    await connected.enter_async_context(
                        HivemeshClient(
                            settings.addresses["gateway"], metadata=[("x-api-key", key)], own_connection=True
                        )
                    )
                    for _ in range(options.connections)
                ]
                traffic = asyncio.create_task(_traffic(clients, options, run, stop, sent))
                progress = asyncio.create_task(_progress(sent, stop)) if options.progress else None
                began = time.monotonic()
                try:
                    await asyncio.sleep(options.steady_s)
                    _say("rolling restart: every replica of every service, one at a time")
                    rolling_from = time.monotonic()
                    rolled = await _roll(fleet)
                    rolling_to = time.monotonic()
                    await asyncio.sleep(options.tail_s)
                    fleet.check_running()
                finally:
                    stop.set()
                    await traffic
                    if progress is not None:
                        await progress
                ended = time.monotonic()
            phases = [
                _phase("steady", [s for s in sent if s.at < rolling_from], rolling_from - began),
                _phase(
                    "rolling",
                    [s for s in sent if rolling_from <= s.at < rolling_to],
                    rolling_to - rolling_from,
                ),
                _phase("after", [s for s in sent if s.at >= rolling_to], ended - rolling_to),
            ]
            audit = await _audit(settings, prefix, sent, effects)
        except FleetError as exc:
            raise FleetError(f"{exc}\n{_tails(workdir)}") from None
        finally:
            await asyncio.to_thread(fleet.stop)
            await effects.dispose()
    errors = Counter(s.error for s in sent if s.error)
    return Result(phases=phases, rolled=rolled, errors=dict(errors), audit=audit)


@dataclass(frozen=True)
class Audit:
    """What the task log and the effect table say once every task has ended."""

    tasks_in_log: int
    states: dict[str, int]
    dead_letters: int
    # Tasks that called the tool (every task of the run should), tasks whose tool call ran other
    # than exactly once, and executions no task asked for.
    tool_tasks: int
    effects_not_once: int
    stray_effects: int
    # Tasks that took more than one attempt, and the notices their runs recorded, by code.
    retried: int
    notices: dict[str, int]
    # Tasks in the log with other than one ``completed`` event.
    completions_not_once: int


async def _audit(settings: Settings, prefix: str, sent: list[Sent], effects: AsyncEngine) -> Audit:
    tasks = TaskSystem(settings, TaskConfig(redis_prefix=prefix, sweep_interval_s=0))
    await tasks.start()
    try:
        deadline = time.monotonic() + AUDIT_WAIT_S
        while True:
            states = await tasks.log.count_by_state()
            open_ = sum(n for state, n in states.items() if state in _OPEN)
            if not open_ or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        asked: Counter[str] = Counter()
        notices: Counter[str] = Counter()
        retried = completions_not_once = tool_tasks = 0
        for task_id in {s.task_id for s in sent if s.task_id}:
            events = await tasks.log.read(task_id, 0, limit=10_000)
            kinds = [e.WhichOneof("kind") for e in events]
            completions_not_once += kinds.count("completed") != 1
            notices.update(e.notice.code for e in events if e.WhichOneof("kind") == "notice")
            tool_tasks += "tool_called" in kinds
            for event in events:
                if event.WhichOneof("kind") == "tool_called":
                    arguments = json_format.MessageToDict(event.tool_called.arguments)
                    asked[str(arguments.get("expression", ""))] += 1
            task = await tasks.log.get(task_id)
            retried += task is not None and task.attempts > 1
        counted = await effect_counts(effects)
        dead = await tasks.queue.dead_letters(limit=1000)
        return Audit(
            tasks_in_log=sum(states.values()),
            states={_state_name(s): n for s, n in sorted(states.items())},
            dead_letters=len(dead),
            tool_tasks=tool_tasks,
            # A step called again after a takeover is asked twice in the log and must run once.
            effects_not_once=sum(1 for e in asked if counted.get(e, 0) != 1),
            stray_effects=sum(n for e, n in counted.items() if e not in asked),
            retried=retried,
            notices=dict(notices),
            completions_not_once=completions_not_once,
        )
    finally:
        await tasks.stop(0)


def _state_name(state: int) -> str:
    return TaskState.Name(TaskState.ValueType(state)).removeprefix("TASK_STATE_")


def _tails(workdir: Path) -> str:
    return "\n".join(f"--- {log.name}: {tail(log)}" for log in sorted(workdir.glob("*.log")))


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
