"""Ports of long-term memory: what the domain needs from an encoder, a vector index and a ledger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from hivemesh.memory.model import ChangeAction, Hit, Memory, MemoryChange, Owner


class Embedder(Protocol):
    """Turns texts into vectors, one per text, in order."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class VectorIndex(Protocol):
    """Vectors and the payload to answer Recall from, confined to an owner on every read and delete.

    Adapters build the tenant and user filter into every query themselves: no method searches,
    reads or deletes without an ``Owner``.
    """

    @property
    def dimensions(self) -> int | None:
        """Length of the stored vectors, or None before the collection exists."""
        ...

    @property
    def store(self) -> str:
        """What keeps the vectors: "qdrant" (a server) or "qdrant-edge" (the engine in-process)."""
        ...

    async def open(self) -> None: ...

    async def ensure(self, dimensions: int) -> None:
        """Create the collection for vectors of this length; raise DimensionMismatch if it differs."""
        ...

    async def upsert(self, entries: Sequence[tuple[Memory, Sequence[float]]]) -> None:
        """Store memories with their vectors; an entry never replaces a newer version."""
        ...

    async def search(
        self,
        owner: Owner,
        vector: Sequence[float],
        *,
        limit: int,
        filters: Mapping[str, str],
        min_score: float,
        now: float,
    ) -> list[Hit]:
        """The owner's unexpired memories closest to ``vector`` whose metadata has ``filters``."""
        ...

    async def delete(self, owner: Owner, memory_ids: Sequence[str]) -> None: ...

    async def maintain(self) -> None:
        """Background upkeep, e.g. building the graph for vectors added since the last call."""
        ...

    async def close(self) -> None: ...


class Ledger(Protocol):
    """The authoritative copy of every memory, its version and its history of changes."""

    async def add(self, memory: Memory, request_id: str) -> None: ...

    async def by_request(self, owner: Owner, request_id: str) -> str | None:
        """The memory a Remember with this request id produced, if any."""
        ...

    async def get(self, owner: Owner, memory_id: str) -> Memory | None: ...

    async def replace(
        self, memory: Memory, expected_version: int, action: ChangeAction, request_id: str
    ) -> bool:
        """Store ``memory`` if the stored version is still ``expected_version``; False otherwise."""
        ...

    async def matching(self, owner: Owner, metadata: Mapping[str, str]) -> list[str]:
        """Ids of the owner's memories whose metadata has all these values."""
        ...

    async def remove(
        self, owner: Owner, memory_ids: Sequence[str], action: ChangeAction, now: float
    ) -> list[str]:
        """Delete memories, recording ``action`` in their history; returns the ids that existed."""
        ...

    async def history(self, owner: Owner, memory_id: str) -> list[MemoryChange]: ...

    async def expired(self, now: float, limit: int) -> list[tuple[Owner, str]]: ...
