"""Agent benchmark: ``python -m benchmarks.agent`` runs the task set through the gateway and prints
the share answered correctly per category and overall, tasks/s, and p50/p95/p99 latency.

By default it starts the five services in this process on free ports with embedded storage in a
temporary directory; ``--address`` measures a mesh that is already running instead. The cases are
run and judged as ``hivemesh eval`` runs them; ``--export FILE`` writes them as a suite file instead.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.agent.cases import build
from hivemesh.client import HivemeshClient, credentials_from_env
from hivemesh.evaluation import cases
from hivemesh.evaluation.cli import document, write_table
from hivemesh.evaluation.report import summarise
from hivemesh.evaluation.runner import SuiteRunner
from hivemesh.mesh.config import SERVICES, Settings
from hivemesh.mesh.launch import LocalMesh


def suite() -> cases.Suite:
    """The benchmark's cases as the suite ``hivemesh eval --cases default`` runs."""
    return cases.parse(cases.dumps(build()), "default")


async def _run(args: argparse.Namespace) -> int:
    selected = suite()
    if args.category:
        selected = replace(selected, cases=tuple(c for c in selected.cases if c.category in args.category))
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
    started_at = dt.datetime.now(dt.UTC)
    began = time.perf_counter()
    try:
        async with HivemeshClient(address, metadata=credentials_from_env(), timeout_s=60) as client:
            results = await SuiteRunner(client).run(selected, concurrency=args.concurrency)
    finally:
        if mesh is not None:
            await mesh.stop()
        tmp.cleanup()
    elapsed = time.perf_counter() - began
    report = summarise(
        results,
        selected,
        address=address,
        started_at=started_at,
        seconds=elapsed,
        concurrency=args.concurrency,
    )
    write_table(sys.stdout, report, None, None, len(report.failures) if args.verbose else 0)
    turns = report.latency_ms.turns
    print(f"{turns} tasks in {elapsed:.1f}s: {turns / elapsed:.1f} tasks/s")
    if args.report_out is not None:
        args.report_out.write_text(
            json.dumps(document(report, None, None), indent=2) + "\n", encoding="utf-8"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.agent", description=__doc__)
    parser.add_argument("--address", help="gateway of a running mesh (default: start one in this process)")
    parser.add_argument("--concurrency", type=int, default=4, help="cases run at once")
    parser.add_argument("--category", action="append", help="only these categories (repeatable)")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every failed case")
    parser.add_argument("--export", type=Path, help="write the cases as a suite file (JSON) and exit")
    parser.add_argument(
        "--report-out", type=Path, help="also write the figures as a hivemesh eval document (a baseline)"
    )
    args = parser.parse_args()
    if args.export is not None:
        args.export.write_text(cases.dumps(build()), encoding="utf-8")
        return 0
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
