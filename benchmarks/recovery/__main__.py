"""Crash recovery: ``python -m benchmarks.recovery`` kills the embedded mesh (``hivemesh up``) with
SIGKILL while tasks are in flight, starts it again, and prints how long after the restart the last
interrupted task completed, against the visibility timeout that bounded it before incarnations.

The restarted mesh has the same instance name as the one that died, so its planner declares the
dead incarnation's queue claims free at once, and its tool service the dead one's tool-call claims,
instead of waiting for their leases to run out. Run again under another name, the dead planner's
claims are freed by its missed heartbeats.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from hivemesh.client import HivemeshClient
from hivemesh.common.v1.task_pb2 import TaskState
from hivemesh.mesh.config import SERVICES

BIN = Path(sys.executable).parent
PROMPTS = ("what is 12 * (3 + 4)?", "convert 5 km to miles", "what is 2 ** 10 - 1?")


@dataclass(frozen=True)
class Recovery:
    submitted: int
    working_at_kill: int
    waiting_at_kill: int
    restart_to_last_done_s: float
    completed: int
    visibility_timeout_s: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _counts(db: Path) -> dict[int, int]:
    with sqlite3.connect(db) as conn:
        return {
            int(s): int(n) for s, n in conn.execute("SELECT state, count(*) FROM task_tasks GROUP BY state")
        }


async def _ready(address: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with HivemeshClient(address, timeout_s=2.0) as client:
        while True:
            try:
                await client.list(page_size=1)
                return
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


async def measure(
    base: Path, *, tasks: int = 300, visibility_timeout_s: float = 120.0, successor: bool = True
) -> Recovery:
    """One kill and restart of ``hivemesh up`` in ``base``; the tasks are the calculator and unit
    conversions of the agent benchmark. With ``successor`` False the restarted planner has another
    name, so the dead one's claims are freed only when its missed heartbeats are noticed."""
    ports = {name: _free_port() for name in SERVICES}
    env = {
        **os.environ,
        "HIVEMESH_DATA_DIR": str(base / "data"),
        "HIVEMESH_METRICS_PORT": "off",
        "HIVEMESH_AUTH": "none",
        "HIVEMESH_RATE_LIMIT": "0",
        "HIVEMESH_EDGE_PORT": "off",
        "HIVEMESH_VISIBILITY_TIMEOUT": str(visibility_timeout_s),
        **{f"HIVEMESH_{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }
    address = f"127.0.0.1:{ports['gateway']}"
    db = base / "data" / "tasks.db"

    def start(log: str, name: str) -> subprocess.Popen[bytes]:
        with (base / log).open("wb") as out:
            return subprocess.Popen(
                [str(BIN / "hivemesh"), "up"],
                env={**env, "HIVEMESH_INSTANCE_NAME": name},
                stdout=out,
                stderr=out,
            )

    first = start("first.log", "planner-a")
    try:
        await _ready(address, 120)
        async with HivemeshClient(address) as client:
            await asyncio.gather(
                *(
                    client.submit(PROMPTS[n % len(PROMPTS)], user_id=f"u{n}", session_id="recovery")
                    for n in range(tasks)
                )
            )
        # Kill once some tasks have finished and others are still being worked on.
        deadline = time.monotonic() + 60
        while _counts(db).get(TaskState.TASK_STATE_COMPLETED, 0) < tasks // 10:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the embedded mesh completed no task within a minute: {_counts(db)}")
            await asyncio.sleep(0.005)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    at_kill = _counts(db)
    restarted = time.monotonic()
    second = start("second.log", "planner-a" if successor else "planner-b")
    try:
        # The planner starts before the gateway (leaves first): count from the restart itself.
        deadline = restarted + visibility_timeout_s * 2
        while True:
            done = time.monotonic()
            if _counts(db).get(TaskState.TASK_STATE_COMPLETED, 0) >= tasks or done > deadline:
                break
            await asyncio.sleep(0.01)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    return Recovery(
        submitted=tasks,
        working_at_kill=at_kill.get(TaskState.TASK_STATE_WORKING, 0),
        waiting_at_kill=at_kill.get(TaskState.TASK_STATE_SUBMITTED, 0),
        restart_to_last_done_s=done - restarted,
        completed=_counts(db).get(TaskState.TASK_STATE_COMPLETED, 0),
        visibility_timeout_s=visibility_timeout_s,
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recovery", description=__doc__)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    print(
        "| run | restarted mesh | WORKING at kill | queued at kill | restart → last task done | completed |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for run in range(1, args.runs + 1):
        for successor in (True, False):
            with tempfile.TemporaryDirectory(prefix="hivemesh-recovery-") as tmp:
                r = asyncio.run(measure(Path(tmp), tasks=args.tasks, successor=successor))
            how = "same instance name" if successor else "another instance name"
            print(
                f"| {run} | {how} | {r.working_at_kill} | {r.waiting_at_kill} "
                f"| {r.restart_to_last_done_s:.1f} s | {r.completed}/{r.submitted} |",
                flush=True,
            )
    print(
        "(under another name, a tool call that was running keeps its claim until that lease ends: the "
        "tool's timeout plus 30 s; without incarnations the planner's claims wait out the 120 s lease)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
