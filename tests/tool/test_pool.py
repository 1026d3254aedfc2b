"""The worker pool: cpu_bound tools in processes a cancellation kills, other tools in threads."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator

import pytest

from hivemesh.mesh.errors import InvalidArgument
from hivemesh.tool.model import ToolOutput
from hivemesh.tool.pool import PoolSize, WorkerPool
from hivemesh.tool.worker import ToolRaised
from tests.tool.cpu_tools import picky, spin
from tests.tool.loop import gone, stalls


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(PoolSize(processes=1, threads=2), preload=["tests.tool.cpu_tools"])
    await workers.start()
    try:
        yield workers
    finally:
        await workers.stop(1.0)


async def test_a_cpu_bound_tool_runs_in_another_process(pool: WorkerPool) -> None:
    output = await pool.in_process(spin.target, {"seconds": 0})
    assert output.value["pid"] != os.getpid()


async def test_errors_come_back_as_they_were_raised(pool: WorkerPool) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await pool.in_process(picky.target, {"word": "no"})
    assert (refused.value.reason, refused.value.metadata["field"]) == ("NOT_YES", "arguments.word")
    assert [v.field for v in refused.value.violations] == ["arguments.word"]
    with pytest.raises(ToolRaised) as raised:
        await pool.in_process(picky.target, {"word": "crash"})
    assert raised.value.type_name == "RuntimeError"
    assert "the widget fell over" in str(raised.value)
    assert "cpu_tools.py" in raised.value.remote_traceback
    # A tool that raised leaves its process in service.
    assert (await pool.in_process(picky.target, {"word": "yes"})).display == "yes"


async def test_a_timeout_kills_the_computation_and_the_loop_stays_free(pool: WorkerPool) -> None:
    first = int((await pool.in_process(spin.target, {"seconds": 0})).display)
    started = time.monotonic()
    outcome, worst = await stalls(asyncio.wait_for(pool.in_process(spin.target, {"seconds": 60}), 0.5))
    assert isinstance(outcome, TimeoutError)
    assert time.monotonic() - started < 5.0
    assert worst < 1.0, f"the event loop stalled {worst:.2f}s"  # blocked, it would be 60 s
    assert gone(first), "the process computing past its timeout is still alive"
    # A fresh process takes its place.
    second = int((await pool.in_process(spin.target, {"seconds": 0})).display)
    assert second != first


async def test_a_call_waits_for_a_busy_process_then_runs(pool: WorkerPool) -> None:
    outputs = await asyncio.gather(*(pool.in_process(spin.target, {"seconds": 0.05}) for _ in range(3)))
    assert len({o.value["pid"] for o in outputs}) == 1  # one process, one call at a time


async def test_a_thread_tool_leaves_the_loop_free(pool: WorkerPool) -> None:
    def nap() -> ToolOutput:
        time.sleep(1.5)
        return ToolOutput({"thread": threading.get_ident()}, "rested")

    outcome, worst = await stalls(pool.in_thread(nap))
    assert isinstance(outcome, ToolOutput)
    assert outcome.value["thread"] != threading.get_ident()
    assert worst < 0.75, f"the event loop stalled {worst:.2f}s"  # blocked, it would be 1.5 s


async def test_a_stopped_pool_leaves_no_process_behind() -> None:
    workers = WorkerPool(PoolSize(processes=2, threads=1), preload=["tests.tool.cpu_tools"])
    await workers.start()
    pids = {int((await workers.in_process(spin.target, {"seconds": 0})).display) for _ in range(4)}
    await workers.stop(1.0)
    assert all(gone(pid) for pid in pids)
