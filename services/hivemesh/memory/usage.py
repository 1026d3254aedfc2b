"""How much each layer of memory holds for a tenant, or for one user of it: counts only, never
content (``CountMemory``). Each store answers for itself through one small port."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Tally:
    """What one store holds for the scope counted: its items (turns, memories or records) and,
    for short-term memory, the sessions they belong to."""

    items: int
    sessions: int = 0


class Tallied(Protocol):
    async def tally(self, tenant_id: str, user_id: str, now: float) -> Tally:
        """The tenant's items (one user's when ``user_id`` is given), expired ones left out."""
        ...


@dataclass(frozen=True)
class Layer:
    """A layer of memory: the kind of store behind it here ("redis", "sqlite"...) and the store."""

    store: str
    source: Tallied


@dataclass(frozen=True)
class LayerUsage:
    store: str
    items: int


@dataclass(frozen=True)
class Usage:
    short_term: LayerUsage
    sessions: int
    long_term: LayerUsage
    structured: LayerUsage


class MemoryUsage:
    def __init__(self, short: Layer, long: Layer, structured: Layer, clock: Callable[[], float]) -> None:
        self._short = short
        self._long = long
        self._structured = structured
        self._clock = clock

    async def count(self, tenant_id: str, user_id: str) -> Usage:
        now = self._clock()
        short, long, structured = await asyncio.gather(
            self._short.source.tally(tenant_id, user_id, now),
            self._long.source.tally(tenant_id, user_id, now),
            self._structured.source.tally(tenant_id, user_id, now),
        )
        return Usage(
            LayerUsage(self._short.store, short.items),
            short.sessions,
            LayerUsage(self._long.store, long.items),
            LayerUsage(self._structured.store, structured.items),
        )
