"""Throughput benchmark: ``python -m benchmarks.throughput`` starts each topology from nothing (the
embedded ``hivemesh up``, the distributed one process per service plus a second planner on
PostgreSQL and Redis, and the floor: bare grpc.aio processes making a task's hops), drives it with
a mix of the agent benchmark's requests in closed loops (N clients) and open loops (tasks at fixed
arrival times), and prints one table: tasks/s, p50/p95/p99, errors, CPU milliseconds per task of
each process, SQL transactions and RPCs per task, and the ratio to the floor. A growth check
compares an empty task log with one already holding many finished tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from benchmarks.throughput.report import as_json, table
from benchmarks.throughput.run import Options, run
from benchmarks.throughput.topology import DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, TOPOLOGIES

# --quick: every point short, a small log for the growth check (a smoke run, not a measurement).
QUICK = {"duration": 1.5, "warmup": 0.5, "growth_tasks": 2000, "growth_clients": 8}
FULL = {"duration": 10.0, "warmup": 3.0, "growth_tasks": 100_000, "growth_clients": 32}


def _ints(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(",") if v.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def _rates(text: str) -> tuple[float, ...]:
    if text.strip() in ("", "none"):
        return ()
    values = tuple(float(v) for v in text.split(",") if v.strip())
    if min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive rates separated by commas, got {text!r}")
    return values


def _rate_or_none(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a rate in tasks/s (0: none), got {text!r}")
    return value


def _topologies(text: str) -> tuple[str, ...]:
    if text.strip() == "none":
        return ()  # only the rolling rows (--rolling)
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [n for n in names if n not in TOPOLOGIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(TOPOLOGIES)}; got {text!r}")
    return names


def parse(argv: list[str] | None = None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__)
    parser.add_argument(
        "--topologies",
        type=_topologies,
        default=("floor", "embedded", "openai-door", "distributed"),
        help=(
            "which to run, in this order (default: floor,embedded,openai-door,distributed; "
            "none: only --rolling)"
        ),
    )
    parser.add_argument("--duration", type=float, help="seconds of load per point (default 10; --quick 1.5)")
    parser.add_argument(
        "--clients", type=_ints, default=(1, 8, 32, 128), help="closed loops (default 1,8,32,128)"
    )
    parser.add_argument(
        "--rates",
        type=_rates,
        default=(50.0, 75.0, 100.0),
        help="open loops, tasks/s (default 50,75,100; none)",
    )
    parser.add_argument(
        "--growth-tasks",
        type=int,
        help="finished tasks in the log for the growth check (default 100,000; --quick 2,000; 0 skips it)",
    )
    parser.add_argument("--growth-clients", type=int, help="closed loop of the growth check (default 32)")
    parser.add_argument(
        "--task-timeout", type=float, default=30.0, help="seconds a task may take (default 30)"
    )
    parser.add_argument(
        "--rolling",
        type=_rate_or_none,
        default=0.0,
        metavar="RATE",
        help="also rows of a rolling restart: the distributed topology with two replicas of every "
        "service, every replica restarted in turn under an open loop of RATE tasks/s; p99 during the "
        "restarts beside p99 without (benchmarks/rolling; the machine's PostgreSQL and Redis). "
        "0: none (default)",
    )
    parser.add_argument("--quick", action="store_true", help="short points and a small log: a smoke run")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--json-file", type=Path, help="also write the JSON to this file")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"a Redis database the benchmark may flush (default {DEFAULT_REDIS_URL})",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help=f"PostgreSQL to create a throwaway database on (default {DEFAULT_POSTGRES_URL})",
    )
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    options = Options(
        topologies=args.topologies,
        duration_s=args.duration or defaults["duration"],
        clients=args.clients,
        rates=args.rates,
        growth_tasks=int(defaults["growth_tasks"] if args.growth_tasks is None else args.growth_tasks),
        growth_clients=int(args.growth_clients or defaults["growth_clients"]),
        task_timeout_s=args.task_timeout,
        warmup_s=min(defaults["warmup"], args.duration or defaults["warmup"]),
        redis_url=args.redis_url,
        postgres_url=args.postgres_url,
        progress=not args.quiet,
        rolling_rate=args.rolling,
    )
    return options, args


def main(argv: list[str] | None = None) -> int:
    options, args = parse(argv)
    rows = asyncio.run(run(options))
    figures = json.dumps(as_json(rows, options), indent=2)
    if args.json_file is not None:
        args.json_file.write_text(figures + "\n")
    print(figures if args.json else table(rows, options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
