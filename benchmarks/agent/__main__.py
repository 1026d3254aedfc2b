"""Agent benchmark: ``python -m benchmarks.agent`` runs the task set through the gateway and prints
the share answered correctly per category and overall, tasks/s, and p50/p99 latency.

By default it starts the five services in this process on free ports with embedded storage in a
temporary directory; ``--address`` measures a mesh that is already running instead.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace

from benchmarks.agent.cases import Case, Turn, build, judge
from hivemesh.client import HivemeshClient, credentials_from_env
from hivemesh.common.v1.task_pb2 import TaskState
from hivemesh.mesh.config import SERVICES, Settings
from hivemesh.mesh.launch import LocalMesh


@dataclass
class Result:
    case: Case
    ok: bool
    detail: str
    latencies: list[float]


async def _ask(client: HivemeshClient, user: str, turn: Turn) -> tuple[str, str, float]:
    """Run one turn; returns (final state name, answer, seconds)."""
    started = time.perf_counter()
    task, _ = await client.submit(turn.text, user_id=user, session_id=turn.session)
    async for _ in client.follow(task.task_id):
        pass
    final = await client.get(task.task_id)
    if turn.question:
        if final.state != TaskState.TASK_STATE_INPUT_REQUIRED:
            return TaskState.Name(final.state), final.answer, time.perf_counter() - started
        answered = await client.answer(task.task_id, turn.answer)
        async for _ in client.follow(task.task_id, answered.last_sequence - 1):
            pass
        final = await client.get(task.task_id)
    answer = final.answer if final.state == TaskState.TASK_STATE_COMPLETED else final.error.message
    return TaskState.Name(final.state), answer, time.perf_counter() - started


async def _run_case(client: HivemeshClient, case: Case) -> Result:
    user = f"bench-{uuid.uuid4().hex[:10]}"
    latencies: list[float] = []
    try:
        for turn in case.setup:
            state, answer, seconds = await _ask(client, user, turn)
            latencies.append(seconds)
            if state != "TASK_STATE_COMPLETED":
                return Result(case, False, f"setup {turn.text!r}: {state} {answer!r}", latencies)
        for turn in case.turns:
            state, answer, seconds = await _ask(client, user, turn)
            latencies.append(seconds)
            if state != "TASK_STATE_COMPLETED" or not judge(turn, answer):
                return Result(case, False, f"{turn.text!r} -> {state} {answer!r}", latencies)
    except Exception as exc:
        return Result(case, False, f"error: {exc}", latencies)
    return Result(case, True, "", latencies)


async def _run(args: argparse.Namespace) -> int:
    cases = build(dt.datetime.now(dt.UTC).date())
    if args.category:
        cases = [c for c in cases if c.category in args.category]
    mesh: LocalMesh | None = None
    tmp = tempfile.TemporaryDirectory(prefix="hivemesh-bench-")
    address = args.address
    if address is None:
        # The mesh started here is private to this process, like `hivemesh up`'s.
        os.environ.setdefault("HIVEMESH_AUTH", "none")
        # The per-tenant rate limit (50 calls/s by default) is policy, not what this measures: all
        # cases run as one tenant, and the mesh answers them faster than the limit admits.
        os.environ.setdefault("HIVEMESH_RATE_LIMIT", "0")
        settings = Settings.from_env({"HIVEMESH_DATA_DIR": tmp.name, "HIVEMESH_METRICS_PORT": "off"})
        mesh = LocalMesh(replace(settings, ports=dict.fromkeys(SERVICES, 0)))
        await mesh.start()
        address = mesh.address("gateway")
    semaphore = asyncio.Semaphore(args.concurrency)
    results: list[Result] = []

    async def bounded(case: Case) -> None:
        async with semaphore:
            results.append(await _run_case(client, case))

    began = time.perf_counter()
    try:
        async with HivemeshClient(address, metadata=credentials_from_env(), timeout_s=60) as client:
            await asyncio.gather(*(bounded(c) for c in cases))
    finally:
        if mesh is not None:
            await mesh.stop()
        tmp.cleanup()
    elapsed = time.perf_counter() - began
    _report(results, elapsed, args.verbose)
    return 0


def _report(results: list[Result], elapsed: float, verbose: bool) -> None:
    by_category: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        by_category[result.case.category].append(result)
    print(f"{'category':<16} {'correct':>9} {'share':>7}")
    for category, items in sorted(by_category.items()):
        good = sum(r.ok for r in items)
        print(f"{category:<16} {good:>4}/{len(items):<4} {good / len(items):>7.1%}")
    total = sum(r.ok for r in results)
    print(f"{'overall':<16} {total:>4}/{len(results):<4} {total / max(1, len(results)):>7.1%}")
    latencies = sorted(s for r in results for s in r.latencies)
    tasks = len(latencies)
    if latencies:
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000
        print(
            f"\n{tasks} tasks in {elapsed:.1f}s: {tasks / elapsed:.1f} tasks/s, "
            f"p50 {p50:.0f} ms, p99 {p99:.0f} ms"
        )
    if verbose:
        for result in results:
            if not result.ok:
                print(f"  FAIL [{result.case.category}] {result.detail}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.agent", description=__doc__)
    parser.add_argument("--address", help="gateway of a running mesh (default: start one in this process)")
    parser.add_argument("--concurrency", type=int, default=4, help="cases run at once")
    parser.add_argument("--category", action="append", help="only these categories (repeatable)")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every failed case")
    return asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
