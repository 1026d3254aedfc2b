"""The planner's copy of the tool catalogue, so that a task does not have to ask ToolService for it.

The copy is used without a call while it is fresh: younger than ``max_age_s`` and not known to be
out of date. It goes out of date when a tool answer names another catalogue version (``observe``) or
when a call finds a tool gone (``invalidate``); the next task then refreshes it with a conditional
ListTools, which costs one small answer when nothing changed. ``max_age_s`` bounds how long a change
can go unnoticed by a planner that makes no tool calls.

However many tasks want a fresh copy at once, one refresh runs and they all share its outcome. It
runs on its own, bounded by the call timeout rather than by the deadline of whichever task started
it, so a caller that gives up early does not fail the others.

ToolService takes no scope in ListTools and serves every caller the same tools, so there is one copy
per tool service, not one per tenant.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hivemesh.mesh.credentials import begin_acting, current_credential
from hivemesh.tool.v1.tool_service_pb2 import ToolSpec


@dataclass(frozen=True)
class ToolCatalogue:
    """Every tool's spec and the version ToolService gave this set ("" from a service too old to
    version its catalogue: such a copy is renewed by age alone)."""

    version: str
    specs: tuple[ToolSpec, ...]


class CatalogueFetch(Protocol):
    async def __call__(self, held: ToolCatalogue | None) -> ToolCatalogue:
        """The current catalogue; ``held`` itself when it is still current."""
        ...


class CachedCatalogue:
    def __init__(
        self, fetch: CatalogueFetch, max_age_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._max_age_s = max_age_s
        self._clock = clock
        self._held: ToolCatalogue | None = None
        self._fetched_at = -math.inf
        # Bumped by every sign of a change; a copy is fresh only if none came since its fetch began.
        self._changes = 0
        self._held_changes = -1
        self._refresh: asyncio.Task[ToolCatalogue] | None = None

    async def get(self) -> ToolCatalogue:
        held = self._held
        if held is not None and self._fresh():
            return held
        refresh = self._refresh
        if refresh is None:
            # An empty context: no caller's deadline bounds the shared call (see the module's doc).
            # It carries the caller's mesh credential only: ListTools answers every tenant alike.
            context = contextvars.Context()
            context.run(begin_acting, current_credential())
            refresh = asyncio.create_task(self._renew(), context=context)
            refresh.add_done_callback(_consume)
            self._refresh = refresh
        return await asyncio.shield(refresh)

    def observe(self, version: str) -> None:
        """ToolService answered naming ``version``: the copy is out of date if it differs."""
        held = self._held
        if version and (held is None or version != held.version):
            self._changes += 1

    def invalidate(self) -> None:
        """The copy is known to be wrong (it names a tool that is gone): refresh before next use."""
        self._changes += 1

    def _fresh(self) -> bool:
        return self._held_changes == self._changes and self._clock() - self._fetched_at < self._max_age_s

    async def _renew(self) -> ToolCatalogue:
        started, changes = self._clock(), self._changes
        try:
            current = await self._fetch(self._held)
        finally:
            self._refresh = None
        self._held, self._fetched_at, self._held_changes = current, started, changes
        return current


def _consume(refresh: asyncio.Task[ToolCatalogue]) -> None:
    # Every waiter may have gone (cancelled); the failure is theirs, not worth a warning at exit.
    if not refresh.cancelled():
        refresh.exception()
