"""Measure each topology at each load: the points, the probes around them, the growth check."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.rolling.run import Options as RollingOptions
from benchmarks.rolling.run import Phase
from benchmarks.rolling.run import measure as measure_rolling
from benchmarks.throughput import probes
from benchmarks.throughput.seed import seed_log
from benchmarks.throughput.topology import (
    PortTaken,
    Topology,
    Unavailable,
    distributed,
    embedded,
    floor_topology,
    stores,
)
from benchmarks.throughput.workload import Mix
from hivemesh.loadgen import Closed, Load, Open, Report, Request, Workload, run_load
from hivemesh.mesh.config import Settings

# After a point with failures, tasks the client gave up on may still be queued, or recorded in the
# log but not queued (the sweep queues them again some seconds later): the next point starts once
# the queue has stayed empty for QUIET_S (longer than a sweep interval plus its grace time, plus
# a sample of the queue gauge), or after SETTLE_TIMEOUT_S.
QUIET_S = 12.0
SETTLE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Options:
    topologies: tuple[str, ...]
    duration_s: float
    clients: tuple[int, ...]
    rates: tuple[float, ...]
    # Finished tasks in the log for the growth check; 0 skips it.
    growth_tasks: int
    growth_clients: int
    task_timeout_s: float
    warmup_s: float
    redis_url: str
    postgres_url: str
    progress: bool = True
    # Tasks/s of the rolling-restart rows (benchmarks/rolling); 0: no such rows.
    rolling_rate: float = 0.0

    def loads(self) -> list[Load]:
        return [*(Closed(c) for c in self.clients), *(Open(r) for r in self.rates)]


@dataclass(frozen=True)
class ProcessFigures:
    label: str
    cpu_ms_per_task: float | None
    rss_mb: float | None


@dataclass
class Row:
    """One line of the table: a topology at one load (or why it did not run)."""

    topology: str
    load: str
    report: Report | None = None
    skipped: str = ""
    # The growth check: finished tasks in the log before the point started.
    log_tasks: int | None = None
    processes: list[ProcessFigures] = field(default_factory=list)
    client_cpu_ms_per_task: float | None = None
    rpcs_per_task: float | None = None
    sql_transactions_per_task: float | None = None
    sql_write_operations_per_task: float | None = None
    vs_floor: float | None = None
    settle_s: float = 0.0
    # The OpenAI door against the gRPC path (embedded) at the same load: tasks/s over the gRPC
    # path's, and the milliseconds it adds to the median and the 99th percentile.
    vs_grpc: float | None = None
    added_p50_ms: float | None = None
    added_p99_ms: float | None = None
    # A phase of the rolling restart (instead of ``report``), and what its audit found.
    phase: Phase | None = None
    audit: dict[str, object] | None = None

    @property
    def cpu_ms_per_task(self) -> float | None:
        known = [p.cpu_ms_per_task for p in self.processes if p.cpu_ms_per_task is not None]
        return sum(known) if known and len(known) == len(self.processes) else None


@dataclass(frozen=True)
class _Snapshot:
    at: float
    cpu: dict[str, float | None]
    counters: dict[str, probes.Counters | None]
    client_cpu: float


async def _snapshot(topology: Topology, http: httpx.AsyncClient) -> _Snapshot:
    async def counters(port: int) -> probes.Counters | None:
        try:
            return await probes.scrape(http, port)
        except httpx.HTTPError:
            return None

    scraped = await asyncio.gather(*(counters(p.metrics_port) for p in topology.processes))
    return _Snapshot(
        at=time.perf_counter(),
        cpu={p.label: probes.cpu_seconds(p.pid) for p in topology.processes},
        counters={p.label: c for p, c in zip(topology.processes, scraped, strict=True)},
        client_cpu=time.process_time(),
    )


def _per_task(total: float | None, tasks: int, scale: float = 1.0) -> float | None:
    return None if total is None or tasks == 0 else total * scale / tasks


def _counter_delta(
    before: _Snapshot, after: _Snapshot, pick: Callable[[probes.Counters], float | None]
) -> float | None:
    """The increase summed over the processes that export the counter; None if none does."""
    total: float | None = None
    for label, end in after.counters.items():
        start = before.counters.get(label)
        if end is None or start is None:
            continue
        a, b = pick(start), pick(end)
        if a is not None and b is not None:
            total = (total or 0.0) + (b - a)
    return total


async def _queue_depth(topology: Topology, http: httpx.AsyncClient) -> float | None:
    depths: list[float] = []
    for process in topology.processes:
        with contextlib.suppress(httpx.HTTPError):
            found = (await probes.scrape(http, process.metrics_port)).queue_depth
            if found is not None:
                depths.append(found)
    return sum(depths) if depths else None


async def _settle(topology: Topology, http: httpx.AsyncClient) -> tuple[float, _Snapshot]:
    """Wait until the topology's queue has stayed empty for QUIET_S. Returns the seconds until it
    became empty for good, and a snapshot taken then (so the quiet wait is not counted)."""
    began = time.perf_counter()
    emptied: _Snapshot | None = None
    while time.perf_counter() - began < SETTLE_TIMEOUT_S:
        depth = await _queue_depth(topology, http)
        if depth is None:  # no queue to wait for (the floor)
            break
        if depth:
            emptied = None
        elif emptied is None:
            emptied = await _snapshot(topology, http)
        elif time.perf_counter() - emptied.at >= QUIET_S:
            return emptied.at - began, emptied
        await asyncio.sleep(0.5)
    now = await _snapshot(topology, http)
    return now.at - began, now


async def measure(
    topology: Topology,
    load: Load,
    workload: Workload,
    options: Options,
    http: httpx.AsyncClient,
    *,
    label: str | None = None,
) -> Row:
    """One point: the load for the duration, with CPU and counters read before and after.

    Per-task figures divide by the tasks completed; they count everything from the start of the
    point until the topology is idle again (after failures, tasks the client gave up on may still
    run: their cost is counted too)."""
    if not topology.real_answers:
        judged = workload

        def workload(number: int) -> Request:
            return dataclasses.replace(judged(number), check=None)

    before = await _snapshot(topology, http)
    report = await run_load(
        topology.sender(options.task_timeout_s),
        workload,
        load,
        options.duration_s,
        drain_s=options.task_timeout_s,
        progress=sys.stderr if options.progress else None,
        label=f"{topology.name} {label or load.describe()}  ",
    )
    if report.failed:
        settle, after = await _settle(topology, http)
    else:
        settle, after = 0.0, await _snapshot(topology, http)
    done = report.completed
    figures = []
    for process in topology.processes:
        start, end = before.cpu[process.label], after.cpu[process.label]
        cpu = None if start is None or end is None else end - start
        rss = probes.rss_bytes(process.pid)
        figures.append(
            ProcessFigures(process.label, _per_task(cpu, done, 1000), None if rss is None else rss / 2**20)
        )
    return Row(
        topology=topology.name,
        load=label or load.describe(),
        report=report,
        processes=figures,
        client_cpu_ms_per_task=_per_task(after.client_cpu - before.client_cpu, done, 1000),
        rpcs_per_task=_per_task(_counter_delta(before, after, lambda c: c.rpcs), done),
        sql_transactions_per_task=_per_task(
            _counter_delta(before, after, lambda c: c.sql_transactions), done
        ),
        sql_write_operations_per_task=_per_task(
            _counter_delta(before, after, lambda c: c.sql_operations), done
        ),
        settle_s=settle,
    )


async def warm_up(topology: Topology, mix: Mix, options: Options) -> None:
    """Tell every fact the recalls will ask for, then a short closed loop to warm caches."""
    send = topology.sender(options.task_timeout_s)
    if topology.name != "floor":
        told = await asyncio.gather(*(send(mix.tell(fact)) for fact in mix.facts))
        failed = sorted({outcome.error for outcome in told if outcome.error})
        if failed:
            raise Unavailable(f"warm-up: telling the facts failed ({', '.join(failed)})")
    await run_load(send, mix.workload(), Closed(4), options.warmup_s, drain_s=options.task_timeout_s)


@contextlib.asynccontextmanager
async def start(name: str, workdir: Path, options: Options, *, seed: int = 0) -> AsyncIterator[Topology]:
    """Start topology ``name`` in ``workdir`` from nothing (with ``seed`` finished tasks in its log)."""
    if name == "floor":
        async with floor_topology(workdir) as topology:
            yield topology
    elif name == "embedded":
        if seed:
            took = await seed_log(_settings(workdir), seed, tenant_id="default")
            _say(f"embedded: {seed:,} finished tasks written to the log in {took:.1f}s")
        async with embedded(workdir) as topology:
            yield topology
    elif name == "openai-door":
        async with embedded(workdir, openai_door=True) as topology:
            yield topology
    elif name == "distributed":
        async with stores(options.redis_url, options.postgres_url) as (database_url, redis_url):
            if seed:
                took = await seed_log(_settings(workdir, database_url), seed, tenant_id="bench")
                _say(f"distributed: {seed:,} finished tasks written to the log in {took:.1f}s")
            async with distributed(workdir, database_url, redis_url) as topology:
                yield topology
    else:
        raise ValueError(f"unknown topology {name!r}")


def _settings(workdir: Path, database_url: str | None = None) -> Settings:
    """The settings a topology in ``workdir`` reads its task log with."""
    env = {"HIVEMESH_DATA_DIR": str(workdir / "data"), "HIVEMESH_METRICS_PORT": "off"}
    if database_url is not None:
        env["HIVEMESH_DATABASE_URL"] = database_url
    return Settings.from_env(env)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _topology_rows(
    name: str,
    loads: list[tuple[Load, str]],
    options: Options,
    http: httpx.AsyncClient,
    *,
    seed: int | None = None,
) -> list[Row]:
    """Start ``name`` (for the growth check, with ``seed`` finished tasks in its log), measure each
    (load, label) on it, stop it. A topology that cannot run, or stops working, says why in a row."""
    try:
        return await _measure_topology(name, loads, options, http, seed=seed)
    except PortTaken as exc:
        _say(f"{name}: {exc}; starting again on other ports")
    try:
        return await _measure_topology(name, loads, options, http, seed=seed)
    except PortTaken as exc:
        _say(f"{name}: skipped: {exc}")
        return [Row(name, "", skipped=str(exc))]


async def _measure_topology(
    name: str,
    loads: list[tuple[Load, str]],
    options: Options,
    http: httpx.AsyncClient,
    *,
    seed: int | None,
) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix=f"hivemesh-throughput-{name}-") as directory:
        workdir = Path(directory)
        (workdir / "data").mkdir()
        try:
            async with start(name, workdir, options, seed=seed or 0) as topology:
                mix = Mix()
                _say(f"{name}: up ({len(topology.processes)} processes); warming up")
                await warm_up(topology, mix, options)
                for load, label in loads:
                    row = await measure(topology, load, mix.workload(), options, http, label=label)
                    row.log_tasks = seed
                    rows.append(row)
                    topology.check_running()
        except PortTaken:
            raise  # before anything was measured: the caller starts again
        except Unavailable as exc:
            _say(f"{name}: skipped: {exc}")
            rows.append(Row(name, "", skipped=str(exc)))
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            _say(await asyncio.to_thread(_log_tails, workdir))
            rows.append(Row(name, "", skipped=f"failed: {type(exc).__name__}: {exc}"))
    return rows


def _log_tails(workdir: Path, lines: int = 15) -> str:
    parts = []
    for log in sorted(workdir.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name} (last lines) ---\n" + "\n".join(text))
    return "\n".join(parts)


async def run(options: Options) -> list[Row]:
    rows: list[Row] = []
    async with httpx.AsyncClient() as http:
        for name in options.topologies:
            _say(f"{name}: starting")
            rows += await _topology_rows(
                name, [(load, load.describe()) for load in options.loads()], options, http
            )
        if options.growth_tasks > 0:
            growth = Closed(options.growth_clients)
            for name in options.topologies:
                if name in ("floor", "openai-door") or any(r.topology == name and r.skipped for r in rows):
                    continue
                for seed in (0, options.growth_tasks):
                    label = f"{growth.describe()}, log {'empty' if seed == 0 else f'{seed:,}'}"
                    _say(f"{name}: growth check, {label}")
                    rows += await _topology_rows(name, [(growth, label)], options, http, seed=seed)
    if options.rolling_rate > 0:
        rows += await _rolling_rows(options)
    _compare_to_floor(rows)
    _compare_door_to_grpc(rows)
    return rows


def _compare_door_to_grpc(rows: list[Row]) -> None:
    """What the OpenAI door adds to the gRPC path of the same embedded mesh, load by load."""
    grpc_path = {r.load: r.report for r in rows if r.topology == "embedded" and r.log_tasks is None}
    for row in rows:
        base = grpc_path.get(row.load)
        if row.topology != "openai-door" or row.report is None or base is None:
            continue
        row.vs_grpc = row.report.tasks_per_s / base.tasks_per_s if base.tasks_per_s > 0 else None
        row.added_p50_ms = row.report.p50_ms - base.p50_ms
        row.added_p99_ms = row.report.p99_ms - base.p99_ms


# The rolling rows' phases, as the table names them.
ROLLING_PHASES = {"steady": "no restarts", "rolling": "during restarts", "after": "after restarts"}


async def _rolling_rows(options: Options) -> list[Row]:
    """The replicated distributed topology (two replicas of every service sharing its port, on the
    machine's PostgreSQL and Redis) under an open loop, every replica restarted in turn in the
    middle of it: one row per phase, so the p99 during the restarts stands beside the p99 without."""
    rolling = RollingOptions(
        rate=options.rolling_rate,
        steady_s=max(options.duration_s, 3.0),
        tail_s=max(options.duration_s / 2, 2.0),
        task_timeout_s=options.task_timeout_s,
        progress=options.progress,
    )
    _say(f"rolling: {rolling.rate:g} tasks/s, every replica of every service restarted in turn")
    with tempfile.TemporaryDirectory(prefix="hivemesh-throughput-rolling-") as directory:
        try:
            result = await measure_rolling(Path(directory), rolling)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            return [Row("rolling", "", skipped=f"failed: {type(exc).__name__}: {exc}")]
    rows = [
        Row("rolling", f"open {rolling.rate:g}/s, {ROLLING_PHASES[p.name]}", phase=p) for p in result.phases
    ]
    audit = dataclasses.asdict(result.audit)
    audit.update(restarts=len(result.rolled), clean_exits=sum(r.exit_code == 0 for r in result.rolled))
    for row in rows:
        row.audit = audit
    return rows


def _compare_to_floor(rows: list[Row]) -> None:
    floor = {r.load: r.report for r in rows if r.topology == "floor" and r.report is not None}
    for row in rows:
        base = floor.get(row.load)
        if row.report is not None and base is not None and base.tasks_per_s > 0:
            row.vs_floor = row.report.tasks_per_s / base.tasks_per_s
