"""Load for ``hivemesh bench`` and the throughput benchmark: a closed or an open loop of tasks.

Closed loop: ``clients`` callers each start a task as soon as their previous one ends, so the load
adapts to the system and queueing delay stays hidden. Open loop: tasks are due at fixed times,
``rate`` per second, whether or not earlier ones have finished; each task's latency runs from the
moment it was due, so a system (or a load generator) that falls behind shows it in the figures.
While the load runs, a progress line goes to a text stream about once a second.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TextIO

import grpc

from hivemesh.client import HivemeshClient
from hivemesh.common.v1.task_pb2 import TaskEvent, TaskState
from hivemesh.mesh.status import details_of

# Seconds between two progress lines.
PROGRESS_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Request:
    """One task to start."""

    text: str
    user_id: str
    session_id: str
    # Whether a completed task's answer is right; None accepts any answer.
    check: Callable[[str], bool] | None = None


@dataclass(frozen=True)
class Outcome:
    """How a task ended: ``error`` is empty when it completed, else a status code or state name."""

    error: str = ""
    answer: str = ""


# Runs one task to its end. Expected failures are returned as an Outcome, not raised.
Send = Callable[[Request], Awaitable[Outcome]]
# The i-th task of a run (i counts from 0).
Workload = Callable[[int], Request]


@dataclass(frozen=True)
class Closed:
    """``clients`` callers, each with one task in flight at a time."""

    clients: int

    def describe(self) -> str:
        return f"closed {self.clients}"


@dataclass(frozen=True)
class Open:
    """Tasks due ``rate`` per second at fixed times, independent of completions."""

    rate: float

    def describe(self) -> str:
        return f"open {self.rate:g}/s"


Load = Closed | Open


@dataclass(frozen=True)
class Report:
    """The figures of one run. Latencies are of completed tasks, in milliseconds."""

    load: Load
    seconds: float
    started: int
    completed: int
    wrong: int
    errors: dict[str, int]
    tasks_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_in_flight: int
    # Open loop: how late the load generator started tasks (its own lag, included in latency).
    start_lag_p99_ms: float

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": "closed" if isinstance(self.load, Closed) else "open",
            "clients": self.load.clients if isinstance(self.load, Closed) else None,
            "rate": self.load.rate if isinstance(self.load, Open) else None,
            "seconds": round(self.seconds, 2),
            "started": self.started,
            "completed": self.completed,
            "wrong": self.wrong,
            "tasks_per_s": round(self.tasks_per_s, 1),
            "p50_ms": _rounded(self.p50_ms),
            "p95_ms": _rounded(self.p95_ms),
            "p99_ms": _rounded(self.p99_ms),
            "errors": dict(self.errors),
            "max_in_flight": self.max_in_flight,
            "start_lag_p99_ms": _rounded(self.start_lag_p99_ms),
        }


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 1)


def percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN when it is empty)."""
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class _Tally:
    began: float
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    started: int = 0
    wrong: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    last_end: float = 0.0

    def start(self) -> None:
        self.started += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def finish(self, request: Request, outcome: Outcome, since: float) -> None:
        now = time.perf_counter()
        self.in_flight -= 1
        self.last_end = now
        if outcome.error:
            self.errors[outcome.error] += 1
            return
        self.latencies.append(now - since)
        if request.check is not None and not request.check(outcome.answer):
            self.wrong += 1

    def progress_line(self, label: str) -> str:
        elapsed = time.perf_counter() - self.began
        rate = len(self.latencies) / elapsed if elapsed > 0 else 0.0
        return (
            f"{label}{elapsed:6.1f}s  completed {len(self.latencies)}  {rate:.1f} tasks/s  "
            f"errors {sum(self.errors.values())}  in flight {self.in_flight}"
        )

    def report(self, load: Load) -> Report:
        ended = self.last_end or time.perf_counter()
        seconds = max(ended - self.began, 1e-9)
        ordered = sorted(self.latencies)
        lags = sorted(self.lags)
        return Report(
            load=load,
            seconds=seconds,
            started=self.started,
            completed=len(ordered),
            wrong=self.wrong,
            errors=dict(self.errors),
            tasks_per_s=len(ordered) / seconds,
            p50_ms=percentile(ordered, 0.50) * 1000,
            p95_ms=percentile(ordered, 0.95) * 1000,
            p99_ms=percentile(ordered, 0.99) * 1000,
            max_in_flight=self.max_in_flight,
            start_lag_p99_ms=percentile(lags, 0.99) * 1000,
        )


async def _guarded(send: Send, request: Request) -> Outcome:
    try:
        return await send(request)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # A failure the sender did not expect still counts, under its type's name.
        return Outcome(error=type(exc).__name__)


async def run_load(
    send: Send,
    workload: Workload,
    load: Load,
    duration_s: float,
    *,
    drain_s: float = 60.0,
    progress: TextIO | None = None,
    label: str = "",
) -> Report:
    """Start tasks for ``duration_s`` seconds, then wait (at most ``drain_s``) for those in flight.

    Throughput is the completed tasks over the time from the start to the last task's end."""
    tally = _Tally(began=time.perf_counter())
    reporter = None if progress is None else asyncio.create_task(_report_progress(tally, progress, label))
    try:
        if isinstance(load, Closed):
            await _closed(send, workload, load.clients, duration_s, drain_s, tally)
        else:
            await _open(send, workload, load.rate, duration_s, drain_s, tally)
    finally:
        if reporter is not None:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            _write_progress(progress, tally.progress_line(label), final=True)
    return tally.report(load)


async def _closed(
    send: Send, workload: Workload, clients: int, duration_s: float, drain_s: float, tally: _Tally
) -> None:
    stop_at = tally.began + duration_s
    counter = itertools.count()

    async def caller() -> None:
        while time.perf_counter() < stop_at:
            request = workload(next(counter))
            since = time.perf_counter()
            tally.start()
            tally.finish(request, await _guarded(send, request), since)

    callers = [asyncio.create_task(caller()) for _ in range(clients)]
    await _drain(callers, stop_at + drain_s, tally)


async def _open(
    send: Send, workload: Workload, rate: float, duration_s: float, drain_s: float, tally: _Tally
) -> None:
    running: set[asyncio.Task[None]] = set()

    async def one(request: Request, due: float) -> None:
        tally.start()
        tally.finish(request, await _guarded(send, request), due)

    number = 0
    while True:
        due = tally.began + number / rate
        if due >= tally.began + duration_s:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tally.lags.append(max(0.0, time.perf_counter() - due))
        task = asyncio.create_task(one(workload(number), due))
        running.add(task)
        task.add_done_callback(running.discard)
        number += 1
    await _drain(list(running), tally.began + duration_s + drain_s, tally)


async def _drain(tasks: list[asyncio.Task[None]], until: float, tally: _Tally) -> None:
    """Wait for ``tasks`` until the perf_counter time ``until``; those still running are cancelled
    and counted as UNFINISHED."""
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=max(0.0, until - time.perf_counter()))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if pending:
        tally.errors["UNFINISHED"] += tally.in_flight
        tally.in_flight = 0


async def _report_progress(tally: _Tally, stream: TextIO, label: str) -> None:
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL_S)
        _write_progress(stream, tally.progress_line(label), final=False)


def _write_progress(stream: TextIO | None, line: str, *, final: bool) -> None:
    if stream is None:
        return
    if stream.isatty():
        # One line redrawn in place on a terminal; one line per report in a log.
        stream.write("\r\x1b[K" + line + ("\n" if final else ""))
    elif not final:
        stream.write(line + "\n")
    stream.flush()


# ---- tasks through the gateway --------------------------------------------------------------------


def outcome_of(last: TaskEvent | None) -> Outcome:
    """The outcome of a task from the last event of its ExecuteTask stream."""
    if last is None:
        return Outcome(error="NO_EVENTS")
    kind = last.WhichOneof("kind")
    if kind == "completed":
        return Outcome(answer=last.completed.answer)
    if kind == "failed":
        return Outcome(error=f"FAILED {last.failed.error.reason}".strip())
    if kind == "canceled":
        return Outcome(error=TaskState.Name(TaskState.TASK_STATE_CANCELED))
    if kind == "input_requested":
        return Outcome(error=TaskState.Name(TaskState.TASK_STATE_INPUT_REQUIRED))
    return Outcome(error="STREAM_ENDED_EARLY")


def gateway_sender(client: HivemeshClient, *, tenant_id: str = "", timeout_s: float | None = None) -> Send:
    """Runs each task with one ExecuteTask stream (submit and follow in one call). Errors are not
    retried: a benchmark reports them, by status code and ErrorInfo reason."""

    async def send(request: Request) -> Outcome:
        last: TaskEvent | None = None
        try:
            async for event in client.execute(
                request.text,
                user_id=request.user_id,
                session_id=request.session_id,
                tenant_id=tenant_id,
                timeout_s=timeout_s,
                patience_s=0.0,
            ):
                last = event
        except grpc.aio.AioRpcError as exc:
            details = details_of(exc)
            return Outcome(error=f"{details.code.name} {details.reason}".strip())
        return outcome_of(last)

    return send
