"""Long-term memory: remember, recall, update and forget knowledge, with versions and history.

The ledger (SQL) is the truth about each memory's version and history; the vector index answers
Recall. Every write goes to the ledger first (a compare-and-set on the version) and is then
published to the index, which never lets an older version replace a newer one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from hivemesh.memory.errors import DimensionMismatch, memory_not_found
from hivemesh.memory.model import ChangeAction, Hit, Memory, MemoryChange, Owner, Query, Remembered
from hivemesh.memory.ports import Embedder, Ledger, VectorIndex
from hivemesh.mesh.errors import Aborted, InvalidArgument

DEFAULT_TOP_K = 5
# A near-duplicate that changes under us is retried this often before giving up with ABORTED.
_MERGE_ATTEMPTS = 3


@dataclass(frozen=True)
class KnowledgeSettings:
    dedup_threshold: float = 0.92


class LongTermMemory:
    def __init__(
        self,
        ledger: Ledger,
        index: VectorIndex,
        embedder: Embedder,
        settings: KnowledgeSettings,
        clock: Callable[[], float],
    ) -> None:
        self._ledger = ledger
        self._index = index
        self._embedder = embedder
        self._settings = settings
        self._clock = clock

    async def remember(
        self,
        owner: Owner,
        session_id: str,
        text: str,
        metadata: Mapping[str, str],
        ttl_s: float | None,
        request_id: str = "",
    ) -> Remembered:
        if request_id:
            earlier = await self._ledger.by_request(owner, request_id)
            if earlier is not None:
                current = await self._ledger.get(owner, earlier)
                if current is not None and not current.expired(self._clock()):
                    return Remembered(current, merged=False)
                # What that request made is gone since; remember afresh, the id is already spent.
                request_id = ""
        vector = await self._embed(text)
        for _ in range(_MERGE_ATTEMPTS):
            now = self._clock()
            expire = None if ttl_s is None else now + ttl_s
            twin = await self._near_duplicate(owner, vector, now)
            if twin is None:
                memory = Memory(
                    memory_id=str(uuid.uuid4()),
                    owner=owner,
                    session_id=session_id,
                    text=text,
                    metadata=dict(metadata),
                    version=1,
                    create_time=now,
                    update_time=now,
                    expire_time=expire,
                )
                await self._ledger.add(memory, request_id)
                await self._publish(memory, vector)
                return Remembered(memory, merged=False)
            merged = replace(
                twin,
                session_id=session_id,
                text=text,
                metadata={**twin.metadata, **metadata},
                version=twin.version + 1,
                update_time=now,
                expire_time=expire if ttl_s is not None else twin.expire_time,
            )
            if await self._ledger.replace(merged, twin.version, ChangeAction.MERGED, request_id):
                await self._publish(merged, vector)
                return Remembered(merged, merged=True)
        raise Aborted("the memory changed concurrently; retry", reason="CONCURRENT_UPDATE")

    async def recall(self, owner: Owner, query: Query) -> list[Hit]:
        if query.vector is not None:
            vector: Sequence[float] = query.vector
            stored = self._index.dimensions
            if stored is not None and len(vector) != stored:
                raise InvalidArgument.field(
                    "vector.values",
                    f"has {len(vector)} components; the memory store holds {stored}",
                    reason="DIMENSION_MISMATCH",
                )
        else:
            vector = await self._embed(query.text or "")
        if self._index.dimensions is None:
            return []
        return await self._index.search(
            owner,
            vector,
            limit=query.top_k or DEFAULT_TOP_K,
            filters=query.filters,
            min_score=query.min_score,
            now=self._clock(),
        )

    async def update(
        self, owner: Owner, memory_id: str, text: str, expected_version: int, metadata: Mapping[str, str]
    ) -> Memory:
        current = await self._current(owner, memory_id)
        if current.version != expected_version:
            raise _version_mismatch(memory_id, expected_version, current.version)
        vector = await self._embed(text)
        updated = replace(
            current,
            text=text,
            metadata=dict(metadata) if metadata else current.metadata,
            version=current.version + 1,
            update_time=self._clock(),
        )
        if not await self._ledger.replace(updated, expected_version, ChangeAction.UPDATED, ""):
            latest = await self._current(owner, memory_id)
            raise _version_mismatch(memory_id, expected_version, latest.version)
        await self._publish(updated, vector)
        return updated

    async def forget(self, owner: Owner, memory_id: str | None, metadata: Mapping[str, str]) -> int:
        ids = [memory_id] if memory_id is not None else await self._ledger.matching(owner, metadata)
        if not ids:
            return 0
        # Index first: a memory the ledger still has but the index lost is merely unsearchable,
        # while the reverse would let Recall return something forgotten.
        await self._index.delete(owner, ids)
        return len(await self._ledger.remove(owner, ids, ChangeAction.FORGOTTEN, self._clock()))

    async def history(self, owner: Owner, memory_id: str) -> list[MemoryChange]:
        changes = await self._ledger.history(owner, memory_id)
        if not changes:
            raise memory_not_found(memory_id)
        return changes

    async def sweep(self, limit: int = 500) -> int:
        """Remove memories whose time to live ran out (vectors first); returns how many."""
        now = self._clock()
        expired = await self._ledger.expired(now, limit)
        by_owner: dict[Owner, list[str]] = {}
        for owner, memory_id in expired:
            by_owner.setdefault(owner, []).append(memory_id)
        removed = 0
        for owner, ids in by_owner.items():
            await self._index.delete(owner, ids)
            removed += len(await self._ledger.remove(owner, ids, ChangeAction.EXPIRED, now))
        return removed

    async def _current(self, owner: Owner, memory_id: str) -> Memory:
        current = await self._ledger.get(owner, memory_id)
        if current is None or current.expired(self._clock()):
            raise memory_not_found(memory_id)
        return current

    async def _near_duplicate(self, owner: Owner, vector: Sequence[float], now: float) -> Memory | None:
        hits = await self._index.search(
            owner, vector, limit=1, filters={}, min_score=self._settings.dedup_threshold, now=now
        )
        if not hits:
            return None
        # The index may trail the ledger by a version; merge into what the ledger holds.
        current = await self._ledger.get(owner, hits[0].memory.memory_id)
        return None if current is None or current.expired(now) else current

    async def _publish(self, memory: Memory, vector: Sequence[float]) -> None:
        await self._index.upsert([(memory, vector)])
        # A Forget that ran between our ledger write and the upsert must not leave a searchable copy.
        if await self._ledger.get(memory.owner, memory.memory_id) is None:
            await self._index.delete(memory.owner, [memory.memory_id])

    async def _embed(self, text: str) -> list[float]:
        [vector] = await self._embedder.embed([text])
        stored = self._index.dimensions
        if stored is not None and len(vector) != stored:
            raise DimensionMismatch(len(vector), stored)
        if stored is None:
            await self._index.ensure(len(vector))
        return vector


def _version_mismatch(memory_id: str, expected: int, current: int) -> Aborted:
    return Aborted(
        f"memory {memory_id!r} is at version {current}, not {expected}",
        reason="VERSION_MISMATCH",
        metadata={"memory_id": memory_id, "expected_version": str(expected), "current_version": str(current)},
    )
