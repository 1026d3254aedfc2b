"""Short-term memory: the recent turns of each session, capped and expiring when unused."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from hivemesh.memory.model import Context, SessionKey, Turn
from hivemesh.memory.tokens import fit
from hivemesh.memory.usage import Tally


class TurnStore(Protocol):
    """Keeps the newest ``cap`` turns per session; a session unused for ``ttl_s`` disappears."""

    async def append(
        self,
        session: SessionKey,
        turns: Sequence[Turn],
        request_id: str,
        *,
        cap: int,
        ttl_s: float,
        now: float,
    ) -> int:
        """Add turns (oldest first) unless ``request_id`` was already applied; return the turn count."""
        ...

    async def recent(self, session: SessionKey, *, limit: int, ttl_s: float, now: float) -> list[Turn]:
        """Up to ``limit`` newest turns, oldest first; refreshes the session's time to live."""
        ...

    async def tally(self, tenant_id: str, user_id: str, now: float) -> Tally:
        """Live sessions of the tenant (of one user of it when ``user_id`` is given), and their turns."""
        ...

    async def close(self) -> None: ...


class ShortTermMemory:
    def __init__(
        self,
        store: TurnStore,
        *,
        default_budget: int,
        max_turns: int,
        ttl_s: float,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._default_budget = default_budget
        self._max_turns = max_turns
        self._ttl_s = ttl_s
        self._clock = clock

    async def append(self, session: SessionKey, turns: Sequence[Turn], request_id: str) -> int:
        now = self._clock()
        # A turn without a time was said now.
        stamped = [t if t.time > 0 else Turn(t.role, t.text, now, t.task_id) for t in turns]
        return await self._store.append(
            session, stamped, request_id, cap=self._max_turns, ttl_s=self._ttl_s, now=now
        )

    async def context(self, session: SessionKey, max_tokens: int) -> Context:
        budget = max_tokens or self._default_budget
        turns = await self._store.recent(session, limit=self._max_turns, ttl_s=self._ttl_s, now=self._clock())
        return fit(turns, budget)
