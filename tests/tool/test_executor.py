from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hivemesh.mesh import deadlines
from hivemesh.mesh.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from hivemesh.mesh.sql import sqlite_url
from hivemesh.tool.builtins import discover
from hivemesh.tool.executor import Executor
from hivemesh.tool.model import Progress, ToolCall
from hivemesh.tool.registry import Registry
from hivemesh.tool.stores.sql import SqlIdempotencyStore
from tests.tool import cpu_tools
from tests.tool.fakes import OWNER, deps
from tests.tool.loop import stalls
from tests.tool.slow_tools import Probe, make_tools


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
async def executor(tmp_path: Path, probe: Probe) -> AsyncIterator[Executor]:
    store = SqlIdempotencyStore(sqlite_url(tmp_path / "tool.db"))
    await store.start()
    executor = Executor(Registry([*discover(), *make_tools(probe), *cpu_tools.TOOLS]), deps(), store)
    try:
        yield executor
    finally:
        await executor.stop(1.0)
        await store.stop(1.0)


def call(name: str, key: str = "", **arguments: object) -> ToolCall:
    return ToolCall(name, arguments, key, OWNER, "t-1")


async def test_unknown_tool_and_bad_arguments(executor: Executor) -> None:
    with pytest.raises(NotFound) as missing:
        await executor.invoke(call("teleport"))
    assert missing.value.reason == "TOOL_NOT_FOUND"
    with pytest.raises(InvalidArgument) as bad:
        await executor.invoke(call("roll_dice", count=0))
    assert (bad.value.reason, bad.value.metadata["field"]) == ("INVALID_TOOL_ARGUMENTS", "arguments.count")


async def test_a_tool_slower_than_its_timeout_fails_with_tool_timeout(
    executor: Executor, probe: Probe
) -> None:
    with pytest.raises(DeadlineExceeded) as caught:
        await executor.invoke(call("sleepy", seconds=5))
    assert caught.value.reason == "TOOL_TIMEOUT"
    assert probe.cancelled == 1


async def test_the_callers_deadline_cuts_a_longer_timeout(executor: Executor, probe: Probe) -> None:
    with deadlines.deadline(0.1), pytest.raises(DeadlineExceeded) as caught:
        await executor.invoke(call("patient", seconds=5))
    assert caught.value.reason == "DEADLINE_EXCEEDED"
    assert probe.cancelled == 1


async def test_a_raising_tool_fails_its_call_only(executor: Executor) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        await executor.invoke(call("broken"))
    assert caught.value.reason == "TOOL_FAILED"
    assert "the widget fell over" in caught.value.message
    assert (await executor.invoke(call("calculator", expression="1+1"))).output.display == "2"


async def test_a_burst_beyond_the_limit_is_refused_while_other_tools_answer(executor: Executor) -> None:
    busy = [asyncio.create_task(executor.invoke(call("patient", seconds=0.5))) for _ in range(8)]
    await asyncio.sleep(0.05)
    with pytest.raises(ResourceExhausted) as caught:
        await executor.invoke(call("patient", seconds=0.5))
    assert caught.value.reason == "TOOL_BUSY"
    assert caught.value.retry_after_s > 0
    # The calculator has its own bulkhead: it answers while patient is saturated.
    assert (await executor.invoke(call("calculator", expression="2*21"))).output.display == "42"
    assert all(not t.done() for t in busy)
    await asyncio.gather(*busy)
    assert (await executor.invoke(call("patient", seconds=0))).output.display.startswith("run")


async def test_the_same_key_twice_runs_the_tool_once(executor: Executor, probe: Probe) -> None:
    first = await executor.invoke(call("patient", "task-1:1", seconds=0))
    second = await executor.invoke(call("patient", "task-1:1", seconds=0))
    assert probe.runs == 1
    assert (first.replayed, second.replayed) == (False, True)
    assert second.output == first.output


async def test_concurrent_calls_with_one_key_wait_for_the_first(executor: Executor, probe: Probe) -> None:
    outcomes = await asyncio.gather(
        *(executor.invoke(call("patient", "task-2:1", seconds=0.2)) for _ in range(5))
    )
    assert probe.runs == 1
    assert sorted(o.replayed for o in outcomes) == [False, True, True, True, True]
    assert all(o.output == outcomes[0].output for o in outcomes)


async def test_a_key_reused_for_other_arguments_is_refused(executor: Executor) -> None:
    await executor.invoke(call("calculator", "task-3:1", expression="1+1"))
    with pytest.raises(FailedPrecondition) as caught:
        await executor.invoke(call("calculator", "task-3:1", expression="2+2"))
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"


async def test_a_failed_call_releases_its_key(executor: Executor, probe: Probe) -> None:
    with pytest.raises(FailedPrecondition):
        await executor.invoke(call("flaky", "task-4:1"))
    retried = await executor.invoke(call("flaky", "task-4:1"))
    assert (retried.replayed, probe.runs) == (False, 2)


async def cancel_once_running(executor: Executor, probe: Probe, tool_call: ToolCall) -> None:
    """Start the call, cancel it once the tool is running, and check the caller sees the cancel."""
    running = asyncio.create_task(executor.invoke(tool_call))
    await probe.started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_cancelling_a_call_without_side_effects_stops_the_tool_and_frees_the_key(
    executor: Executor, probe: Probe
) -> None:
    await cancel_once_running(executor, probe, call("pondering", "task-5:1", seconds=30))
    assert probe.cancelled == 1
    again = await executor.invoke(call("pondering", "task-5:1", seconds=0))
    assert (again.replayed, probe.runs) == (False, 2)


async def test_a_side_effect_whose_caller_left_is_finished_and_replayed_to_the_retry(
    executor: Executor, probe: Probe
) -> None:
    # As when the worker that made the call is killed.
    await cancel_once_running(executor, probe, call("patient", "task-5:2", seconds=0.2))
    retry = await executor.invoke(call("patient", "task-5:2", seconds=0.2))
    assert (retry.replayed, retry.output.display, probe.runs, probe.cancelled) == (True, "run 1", 1, 0)


async def test_cancelling_a_side_effect_without_a_key_stops_it(executor: Executor, probe: Probe) -> None:
    await cancel_once_running(executor, probe, call("patient", seconds=30))
    assert probe.cancelled == 1


async def test_stop_waits_for_calls_left_running_then_cancels_them(executor: Executor, probe: Probe) -> None:
    quick = asyncio.create_task(executor.invoke(call("patient", "task-5:3", seconds=0.1)))
    await probe.started.wait()
    probe.started.clear()
    slow = asyncio.create_task(executor.invoke(call("patient", "task-5:4", seconds=30)))
    await probe.started.wait()
    quick.cancel()
    slow.cancel()
    await executor.stop(1.0)
    assert (probe.runs, probe.cancelled) == (2, 1)
    assert (await executor.invoke(call("patient", "task-5:3", seconds=0.1))).replayed
    assert not (await executor.invoke(call("patient", "task-5:4", seconds=0))).replayed


async def test_progress_is_reported(executor: Executor) -> None:
    seen: list[Progress] = []

    async def report(progress: Progress) -> None:
        seen.append(progress)

    await executor.invoke(call("sleepy", seconds=0.05), report)
    assert [p.progress for p in seen] == list(range(10))
    assert seen[0] == Progress(0, 10, "step 0")


async def test_a_plain_function_past_its_timeout_fails_without_holding_the_loop(executor: Executor) -> None:
    started = time.monotonic()
    outcome, worst = await stalls(executor.invoke(call("dozy", seconds=3)))
    assert isinstance(outcome, DeadlineExceeded)
    assert outcome.reason == "TOOL_TIMEOUT"
    assert time.monotonic() - started < 2.0
    assert worst < 1.0, f"the event loop stalled {worst:.2f}s"  # blocked, it would be 3 s


async def test_a_cpu_bound_computation_past_its_timeout_is_stopped(executor: Executor) -> None:
    started = time.monotonic()
    outcome, worst = await stalls(executor.invoke(call("spin", seconds=60)))
    assert isinstance(outcome, DeadlineExceeded)
    assert (outcome.reason, outcome.metadata["timeout_s"]) == ("TOOL_TIMEOUT", "1")
    assert time.monotonic() - started < 4.0
    assert worst < 1.0, f"the event loop stalled {worst:.2f}s"  # blocked, it would be 60 s
    assert (await executor.invoke(call("calculator", expression="6*7"))).output.display == "42"


async def test_a_cpu_bound_call_with_a_key_runs_once(executor: Executor) -> None:
    first = await executor.invoke(call("spin", "k-spin", seconds=0))
    again = await executor.invoke(call("spin", "k-spin", seconds=0))
    assert (first.replayed, again.replayed) == (False, True)
    assert again.output == first.output


async def test_a_number_that_is_not_finite_is_refused_by_name(executor: Executor) -> None:
    for bad in (math.nan, math.inf):
        with pytest.raises(InvalidArgument) as refused:
            await executor.invoke(call("convert_units", value=bad, from_unit="m", to_unit="km"))
        assert (refused.value.reason, refused.value.metadata["field"]) == (
            "INVALID_TOOL_ARGUMENTS",
            "arguments.value",
        )
