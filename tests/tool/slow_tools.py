"""Tools that misbehave on purpose: slow, hanging, failing, counting their runs."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Annotated

from hivemesh.tool.decorator import Arg, FunctionTool, tool
from hivemesh.tool.model import ToolContext, ToolOutput


@dataclass
class Probe:
    """What the test tools saw: how often they ran, and whether they were cancelled."""

    runs: int = 0
    cancelled: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)


def make_tools(probe: Probe) -> list[FunctionTool]:
    @tool(name="sleepy", timeout_s=0.3, max_concurrency=2, side_effects=True)
    async def sleepy(context: ToolContext, seconds: Annotated[float, Arg(minimum=0)]) -> ToolOutput:
        """Sleep, reporting progress each tenth of the way."""
        probe.runs += 1
        probe.started.set()
        try:
            for step in range(10):
                await context.progress(step, 10, f"step {step}")
                await asyncio.sleep(seconds / 10)
        except asyncio.CancelledError:
            probe.cancelled += 1
            raise
        return ToolOutput({"slept": seconds}, f"slept {seconds:g}s")

    async def sleep_counted(seconds: float) -> ToolOutput:
        probe.runs += 1
        probe.started.set()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            probe.cancelled += 1
            raise
        return ToolOutput({"run": probe.runs}, f"run {probe.runs}")

    @tool(name="patient", timeout_s=30.0, max_concurrency=8, side_effects=True)
    async def patient(seconds: Annotated[float, Arg(minimum=0)]) -> ToolOutput:
        """Sleep within a long timeout, counting runs."""
        return await sleep_counted(seconds)

    @tool(name="pondering", timeout_s=30.0, max_concurrency=8)
    async def pondering(seconds: Annotated[float, Arg(minimum=0)]) -> ToolOutput:
        """Sleep like ``patient``, but without side effects."""
        return await sleep_counted(seconds)

    @tool(name="broken", timeout_s=1.0)
    def broken() -> ToolOutput:
        """Always raises."""
        raise RuntimeError("the widget fell over")

    @tool(name="flaky", timeout_s=1.0, side_effects=True)
    async def flaky() -> ToolOutput:
        """Fails on its first run, then works."""
        probe.runs += 1
        if probe.runs == 1:
            raise ValueError("first time unlucky")
        return ToolOutput({"run": probe.runs}, "ok")

    @tool(name="dozy", timeout_s=0.3)
    def dozy(seconds: Annotated[float, Arg(minimum=0)]) -> ToolOutput:
        """Sleep without yielding (a plain function, so it runs in a worker thread)."""
        time.sleep(seconds)
        return ToolOutput({"slept": seconds}, f"slept {seconds:g}s")

    return [sleepy, patient, pondering, broken, flaky, dozy]
