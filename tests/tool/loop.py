"""Measures for tests that a computation stays off the event loop and that a process is gone."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def stalls(awaitable: Awaitable[T]) -> tuple[T | BaseException, float]:
    """The outcome of ``awaitable`` and the longest the event loop went without a turn meanwhile."""
    done = asyncio.Event()
    worst = 0.0

    async def tick() -> None:
        nonlocal worst
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            worst, last = max(worst, now - last), now

    ticker = asyncio.create_task(tick())
    try:
        outcome: T | BaseException = await awaitable
    except Exception as exc:  # the caller asserts on it
        outcome = exc
    done.set()
    await ticker
    return outcome, worst


def gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False
