"""The distributed topology with replicas: every service runs as ``replicas`` processes sharing one
port (``HIVEMESH_REUSE_PORT``), as pods share a Service address, on one PostgreSQL database and one
Redis key prefix. ``roll`` replaces one replica the way a rolling update with ``maxSurge: 1,
maxUnavailable: 0`` does: the new process starts and becomes ready beside the old one, then the old
one gets SIGTERM and drains.

The tool service is ``tests.durability.tool_main``: the real service offering the counting
calculator, so that each real execution of a tool call is recorded and can be counted. The others
are ``hivemesh serve <service>``. Memory replicas keep their embedded vector index in data
directories of their own (a shared Qdrant, ``HIVEMESH_QDRANT_URL``, is what makes them stateless
in a deployment); every process signs and checks mesh credentials with one key pair.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.serving import stop_processes
from hivemesh.mesh.launch import START_ORDER

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120.0


class FleetError(Exception):
    """A replica did not start or did not stop; the message names it and quotes its log."""


@dataclass
class Replica:
    service: str
    # Which of the service's replicas (1, 2, ...) and which version of it (0 first, then 1, ...).
    slot: int
    generation: int
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def label(self) -> str:
        return f"{self.service}-{self.slot}.{self.generation}"


@dataclass(frozen=True)
class Rolled:
    """One replica replaced: how long the new one took to be ready, and the old one to drain."""

    label: str
    start_s: float
    drain_s: float
    exit_code: int | None


@dataclass
class Fleet:
    """``replicas`` processes per service, started leaves first, each service on its own port."""

    workdir: Path
    env: dict[str, str]
    replicas: int = 2
    running: dict[tuple[str, int], Replica] = field(default_factory=dict)

    def _argv(self, service: str) -> list[str]:
        if service == "tool":
            return [sys.executable, "-m", "tests.durability.tool_main"]
        return [sys.executable, "-m", "hivemesh.cli", "serve", service]

    def _spawn(self, service: str, slot: int, generation: int) -> Replica:
        env = dict(self.env)
        if service == "memory":
            env["HIVEMESH_DATA_DIR"] = str(self.workdir / f"memory-{slot}.{generation}")
        log = self.workdir / f"{service}-{slot}.{generation}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                self._argv(service), env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        return Replica(service, slot, generation, popen, log)

    async def _ready(self, replica: Replica) -> None:
        """Until the replica logs that it serves (its components are started and its port is
        bound). Its port is shared, so a health check there could be answered by another replica."""
        marker = f"{replica.service} serving hivemesh.".encode()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while marker not in replica.log.read_bytes():
            if replica.popen.poll() is not None:
                raise FleetError(f"{replica.label} exited at start: {tail(replica.log)}")
            if time.monotonic() > deadline:
                raise FleetError(
                    f"{replica.label} not ready after {READY_TIMEOUT_S:.0f}s: {tail(replica.log)}"
                )
            await asyncio.sleep(0.1)

    async def start(self) -> None:
        """Every replica of every service, leaves first; the replicas of one service together."""
        for service in START_ORDER:
            started = [self._spawn(service, slot, 0) for slot in range(1, self.replicas + 1)]
            for replica in started:
                self.running[(service, replica.slot)] = replica
            await asyncio.gather(*(self._ready(r) for r in started))

    async def roll(self, service: str, slot: int) -> Rolled:
        """Start the next version of one replica, wait until it serves, then SIGTERM the old one
        and wait until it has drained and exited."""
        old = self.running[(service, slot)]
        began = time.monotonic()
        new = self._spawn(service, slot, old.generation + 1)
        self.running[(service, slot)] = new
        await self._ready(new)
        ready = time.monotonic()
        old.popen.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(old.popen.wait, 60)
        except subprocess.TimeoutExpired:
            old.popen.kill()
            raise FleetError(f"{old.label} did not exit within 60 s of SIGTERM") from None
        return Rolled(new.label, ready - began, time.monotonic() - ready, code)

    def check_running(self) -> None:
        for replica in self.running.values():
            if replica.popen.poll() is not None:
                raise FleetError(
                    f"{replica.label} exited with {replica.popen.returncode}: {tail(replica.log)}"
                )

    def stop(self) -> None:
        stop_processes([replica.popen for replica in self.running.values()], timeout_s=30)


def tail(log: Path, lines: int = 8) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
