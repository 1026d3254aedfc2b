"""Value types of the memory domain. Times are POSIX seconds (float); None means "never"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Owner:
    """Who owns long-term memories and records: a user within a tenant."""

    tenant_id: str
    user_id: str


@dataclass(frozen=True)
class SessionKey:
    """One conversation: short-term turns are kept per session."""

    tenant_id: str
    user_id: str
    session_id: str


@dataclass(frozen=True)
class Turn:
    # The common.v1.Role number; the contract's validation guarantees a defined, non-zero value.
    role: int
    text: str
    time: float
    task_id: str = ""


@dataclass(frozen=True)
class Context:
    turns: tuple[Turn, ...]
    truncated: bool
    token_count: int


class ChangeAction(StrEnum):
    REMEMBERED = "REMEMBERED"
    MERGED = "MERGED"
    UPDATED = "UPDATED"
    FORGOTTEN = "FORGOTTEN"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class Memory:
    memory_id: str
    owner: Owner
    # Informational: the session the memory was last written from.
    session_id: str
    text: str
    metadata: Mapping[str, str]
    version: int
    create_time: float
    update_time: float
    expire_time: float | None = None

    def expired(self, now: float) -> bool:
        return self.expire_time is not None and self.expire_time <= now


@dataclass(frozen=True)
class MemoryChange:
    version: int
    action: ChangeAction
    text: str
    time: float


@dataclass(frozen=True)
class Hit:
    memory: Memory
    # Cosine similarity clamped to [0, 1].
    score: float


@dataclass(frozen=True)
class Remembered:
    memory: Memory
    merged: bool


@dataclass(frozen=True)
class Record:
    owner: Owner
    kind: str
    key: str
    value: Mapping[str, Any]
    version: int
    update_time: float
    expire_time: float | None = None


@dataclass(frozen=True)
class RecordPage:
    records: tuple[Record, ...]
    next_page_token: str = ""


@dataclass(frozen=True)
class Query:
    """A Recall query: exactly one of text or vector."""

    text: str | None = None
    vector: tuple[float, ...] | None = None
    top_k: int = 5
    filters: Mapping[str, str] = field(default_factory=dict)
    min_score: float = 0.0
