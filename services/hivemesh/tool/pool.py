"""Where synchronous tools run: a pool of worker threads and a pool of worker processes.

The event loop serves every call of the service (and its health checks), so no tool computes on
it. A plain-function tool runs in a worker thread; the loop stays free, and the call's timeout
answers the caller on time, but the thread itself runs on until the function returns (Python
cannot stop a thread). A ``cpu_bound`` tool runs in a worker process, one call at a time; when its
call is cancelled (its timeout fired, or its caller left) the process is killed at once and a
fresh one takes its place. That is the only way to stop a pure-Python computation, and why tools
whose cost depends on their input (a calculator) are declared ``cpu_bound``.

A call waits for a free process when all are busy; the wait counts against its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from hivemesh.tool.model import JsonObject, ToolOutput, ToolTarget
from hivemesh.tool.worker import decode_error

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class PoolSize:
    # Worker processes for cpu_bound tools: as many calls of them run at once.
    processes: int = 2
    # Worker threads for the other synchronous tools.
    threads: int = 8
    # Longest a new worker process may take to start and import its modules.
    start_timeout_s: float = 30.0
    # Longest line (request or answer) between the service and a worker process.
    max_message_bytes: int = 16 * 1024 * 1024


class WorkerExited(Exception):
    """A worker process ended in the middle of a call (it crashed, or was killed from outside)."""


class _Process:
    """One worker process and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @property
    def alive(self) -> bool:
        return self._process.returncode is None

    async def call(self, request: bytes) -> dict[str, Any]:
        assert self._process.stdin is not None  # piped
        assert self._process.stdout is not None  # piped
        self._process.stdin.write(request)
        await self._process.stdin.drain()
        line = await self._process.stdout.readline()
        if not line:
            code = await self._process.wait()
            raise WorkerExited(f"the worker process running it exited (code {code})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def kill(self) -> None:
        if self.alive:
            self._process.kill()

    async def close(self, grace_s: float) -> None:
        """End of input asks the process to exit; after ``grace_s`` it is killed."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), grace_s)
        except TimeoutError:
            self.kill()
            await self._process.wait()


class WorkerPool:
    """Worker threads and worker processes for synchronous tools (an ``Offload``)."""

    def __init__(self, size: PoolSize | None = None, preload: Sequence[str] = ()) -> None:
        self._size = size or PoolSize()
        if self._size.processes < 1 or self._size.threads < 1:
            raise ValueError("a worker pool needs at least one process and one thread")
        # Modules each new process imports before its first call.
        self._preload = sorted(set(preload))
        self._threads = ThreadPoolExecutor(self._size.threads, thread_name_prefix="hivemesh-tool")
        # One entry per process slot: a process ready for a call, or None (start one when needed).
        self._idle: asyncio.Queue[_Process | None] = asyncio.Queue()
        for _ in range(self._size.processes):
            self._idle.put_nowait(None)
        self._live: set[_Process] = set()
        self._refills: set[asyncio.Task[None]] = set()
        self._stopped = False

    async def start(self) -> None:
        """Start the processes in the background; calls that come first wait for them."""
        for _ in range(self._idle.qsize()):
            slot = self._idle.get_nowait()
            if slot is None:
                self._refill(None)
            else:
                self._idle.put_nowait(slot)

    async def stop(self, grace_s: float) -> None:
        """Let each process finish its call within ``grace_s``, then kill what is left."""
        self._stopped = True
        for task in list(self._refills):
            task.cancel()
        await asyncio.gather(*self._refills, return_exceptions=True)
        await asyncio.gather(*(p.close(grace_s) for p in list(self._live)), return_exceptions=True)
        self._live.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def in_thread(self, function: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, contextvars.copy_context().run, function)

    async def in_process(self, target: ToolTarget, arguments: JsonObject) -> ToolOutput:
        request = json.dumps(
            {"module": target.module, "tool": target.tool, "arguments": dict(arguments)}, allow_nan=False
        ).encode()
        if self._stopped:
            raise WorkerExited("the tool service is stopping")
        slot = await self._idle.get()
        process = slot if slot is not None and slot.alive else None
        if slot is not None and process is None:
            self._live.discard(slot)
        try:
            if process is None:
                process = await self._start_process()
            reply = await process.call(request + b"\n")
        except BaseException:
            # Cancelled (the call's time is up, or its caller left), or the process failed: it may
            # be computing still, so it goes, and a fresh one takes the slot.
            self._refill(process)
            raise
        self._idle.put_nowait(process)
        if "ok" in reply:
            return ToolOutput(reply["ok"]["value"], str(reply["ok"]["display"]))
        raise decode_error(reply["error"])

    def _refill(self, dead: _Process | None) -> None:
        if dead is not None:
            dead.kill()
        if self._stopped:
            return
        task = asyncio.get_running_loop().create_task(self._replace(dead))
        self._refills.add(task)
        task.add_done_callback(self._refills.discard)

    async def _replace(self, dead: _Process | None) -> None:
        fresh: _Process | None = None
        try:
            if dead is not None:
                await dead.close(0.0)
                self._live.discard(dead)
            # A slot taken for a start at start() comes back as a process, or as None if it failed.
            fresh = await self._start_process()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("could not start a tool worker process; the next call tries again")
        finally:
            self._idle.put_nowait(fresh)

    async def _start_process(self) -> _Process:
        if self._stopped:
            raise WorkerExited("the tool service is stopping")
        env = dict(os.environ)
        # The worker imports what this process can import (no empty entry: that would be the
        # working directory).
        env["PYTHONPATH"] = os.pathsep.join(p for p in [*sys.path, env.get("PYTHONPATH", "")] if p)
        created = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hivemesh.tool.worker",
            *self._preload,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=self._size.max_message_bytes,
        )
        process = _Process(created)
        self._live.add(process)
        try:
            assert created.stdout is not None  # piped
            ready = await asyncio.wait_for(created.stdout.readline(), self._size.start_timeout_s)
            if json.loads(ready or b"{}").get("ready") is not True:
                raise WorkerExited(f"a tool worker process did not start: {ready[:200]!r}")
        except BaseException:
            process.kill()
            with contextlib.suppress(Exception):
                await asyncio.shield(process.close(0.0))
            self._live.discard(process)
            raise
        return process
