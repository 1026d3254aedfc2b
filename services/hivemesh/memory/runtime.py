"""Start-up and background upkeep of the memory stores, run as one server component."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.memory.ports import VectorIndex
from hivemesh.memory.shortterm import TurnStore
from hivemesh.mesh.sql import run_migrations

_log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "memory_alembic_version"


@dataclass(frozen=True)
class Chore:
    """Periodic upkeep: ``run`` every ``interval_s`` seconds in the background."""

    name: str
    interval_s: float
    run: Callable[[], Awaitable[object]]


class MemoryRuntime:
    """Migrates the database and opens the index on start; runs the chores; closes all on stop."""

    def __init__(
        self,
        engine: AsyncEngine,
        index: VectorIndex,
        turns: TurnStore,
        chores: Sequence[Chore],
        *,
        dispose_engine: bool = True,
        closing: Sequence[Callable[[], None]] = (),
    ) -> None:
        self._engine = engine
        # Closed at stop, before the engine is disposed of (the record store's reader).
        self._closing = closing
        self._index = index
        self._turns = turns
        self._chores = chores
        self._dispose_engine = dispose_engine
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await run_migrations(self._engine, MIGRATIONS, VERSION_TABLE)
        await self._index.open()
        self._tasks = [asyncio.create_task(self._loop(c), name=f"memory-{c.name}") for c in self._chores]

    async def stop(self, grace_s: float) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._index.close()
        await self._turns.close()
        for close in self._closing:
            close()
        if self._dispose_engine:
            await self._engine.dispose()

    async def _loop(self, chore: Chore) -> None:
        while True:
            await asyncio.sleep(chore.interval_s)
            try:
                await chore.run()
            except Exception:
                # Upkeep must outlive a failed round (a database restart); the next round retries.
                _log.exception("memory %s failed; retrying in %.1fs", chore.name, chore.interval_s)
