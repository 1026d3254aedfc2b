"""A tool call as a stream: its progress reports as they happen, then its outcome."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from hivemesh.tool.executor import Executor
from hivemesh.tool.model import Progress, ToolCall, ToolOutcome


async def invoke_streaming(executor: Executor, call: ToolCall) -> AsyncIterator[Progress | ToolOutcome]:
    reports: asyncio.Queue[Progress] = asyncio.Queue()

    async def report(progress: Progress) -> None:
        reports.put_nowait(progress)

    # The task copies this context, so the caller's deadline bounds the tool too.
    running = asyncio.create_task(executor.invoke(call, report))
    next_report: asyncio.Task[Progress] | None = None
    try:
        while True:
            next_report = asyncio.ensure_future(reports.get())
            await asyncio.wait({next_report, running}, return_when=asyncio.FIRST_COMPLETED)
            if next_report.done():
                yield next_report.result()
                continue
            next_report.cancel()
            while not reports.empty():
                yield reports.get_nowait()
            yield running.result()
            return
    finally:
        # The caller went away (cancelled, deadline): stop the tool with it.
        if next_report is not None:
            next_report.cancel()
        if not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
