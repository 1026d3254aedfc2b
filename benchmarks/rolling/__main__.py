"""Zero-downtime rolling restart: ``python -m benchmarks.rolling`` starts the distributed topology
with two replicas of every service sharing each service's port (PostgreSQL + Redis, one process per
replica), sends tasks at a steady rate, restarts every replica of every service in turn as a
rolling update does (the new version ready first, then SIGTERM and drain for the old one), and
prints tasks/s, failures and p50/p99 before, during and after the restarts, with an audit of the
task log: tasks completed exactly once, dead letters, tool calls run other than once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from benchmarks.rolling.run import Options, Result, measure


def table(result: Result, options: Options) -> str:
    lines = [
        f"rolling restart, {options.replicas} replicas per service, open loop {options.rate:g} tasks/s "
        f"on {options.connections} client connections, grace {options.grace_s:g} s, "
        f"tool calls of {options.tool_work_s:g} s",
        "",
        "| phase | seconds | sent | completed | failed | wrong | tasks/s | p50 | p99 | max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in result.phases:
        lines.append(
            f"| {p.name} | {p.seconds:.0f} | {p.sent} | {p.completed} | {p.failed} | {p.wrong} "
            f"| {p.tasks_per_s:.1f} | {p.p50_ms:.0f} ms | {p.p99_ms:.0f} ms | {p.max_ms:.0f} ms |"
        )
    audit = result.audit
    lines += [
        "",
        f"restarts: {len(result.rolled)} "
        f"(new replica ready in {min(r.start_s for r in result.rolled):.1f}-"
        f"{max(r.start_s for r in result.rolled):.1f} s, old one drained in "
        f"{min(r.drain_s for r in result.rolled):.1f}-{max(r.drain_s for r in result.rolled):.1f} s)",
        f"client errors: {result.errors or 'none'}",
        f"task log: {audit.tasks_in_log} tasks {audit.states}; dead letters {audit.dead_letters}; "
        f"completed other than once {audit.completions_not_once}; taken over or retried {audit.retried} "
        f"(notices {audit.notices or 'none'})",
        f"tasks that called the tool: {audit.tool_tasks}; tool calls run other than once: "
        f"{audit.effects_not_once}; runs no task asked for: "
        f"{audit.stray_effects}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rolling", description=__doc__)
    defaults = Options()
    parser.add_argument("--rate", type=float, default=defaults.rate, help="tasks/s (default %(default)s)")
    parser.add_argument(
        "--steady", type=float, default=defaults.steady_s, help="seconds before the restarts (%(default)s)"
    )
    parser.add_argument(
        "--tail", type=float, default=defaults.tail_s, help="seconds after the restarts (%(default)s)"
    )
    parser.add_argument("--replicas", type=int, default=defaults.replicas, help="per service (%(default)s)")
    parser.add_argument(
        "--connections", type=int, default=defaults.connections, help="client connections (%(default)s)"
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=defaults.patience_s,
        help="seconds a client resumes a dropped stream, 0: report the first error (%(default)s)",
    )
    parser.add_argument("--shutdown-delay", type=float, default=defaults.shutdown_delay_s)
    parser.add_argument("--grace", type=float, default=defaults.grace_s)
    parser.add_argument(
        "--tool-work",
        type=float,
        default=defaults.tool_work_s,
        help="seconds each tool call takes; above --grace, work in flight is cut at each restart",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    options = Options(
        rate=args.rate,
        steady_s=args.steady,
        tail_s=args.tail,
        replicas=args.replicas,
        connections=args.connections,
        patience_s=args.patience,
        shutdown_delay_s=args.shutdown_delay,
        grace_s=args.grace,
        tool_work_s=args.tool_work,
    )
    with tempfile.TemporaryDirectory(prefix="hivemesh-rolling-") as directory:
        result = asyncio.run(measure(Path(directory), options))
    print(json.dumps(asdict(result), indent=2) if args.json else table(result, options))
    audit = result.audit
    clean = (
        not result.failed
        and not any(p.wrong for p in result.phases)
        and not audit.dead_letters
        and not audit.effects_not_once
        and not audit.stray_effects
    )
    clean = clean and audit.tool_tasks == audit.tasks_in_log == result.sent
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
