"""Ports the built-in tools depend on: structured records (the memory service) and the scheduler
that delivers reminders when they are due (the task queue). Adapters implement them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from hivemesh.mesh.errors import Aborted


@dataclass(frozen=True)
class RecordOwner:
    """Tenant and user owning a record (memory enforces both)."""

    tenant_id: str
    user_id: str


@dataclass(frozen=True)
class StoredRecord:
    """A record as stored, with the version a conditional write must name."""

    value: Mapping[str, Any]
    version: int


class VersionConflict(Aborted):
    """Someone else wrote the record since it was read; read again and retry."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(
            f"the {kind} record {key!r} changed concurrently",
            reason="RECORD_VERSION_CONFLICT",
            metadata={"kind": kind, "key": key},
        )


class RecordStore(Protocol):
    """Structured records, one value per (owner, kind, key), with optimistic concurrency."""

    async def get(self, owner: RecordOwner, kind: str, key: str) -> StoredRecord | None: ...

    async def put(
        self, owner: RecordOwner, kind: str, key: str, value: Mapping[str, Any], *, expected_version: int
    ) -> StoredRecord:
        """Write ``value`` if the stored version is ``expected_version`` (-1: only if absent);
        raise VersionConflict otherwise."""
        ...

    async def delete(self, owner: RecordOwner, kind: str, key: str) -> bool: ...


@dataclass(frozen=True)
class Reminder:
    """A timer or reminder to deliver to the task that set it when it is due."""

    reminder_id: str
    kind: Literal["timer", "reminder"]
    text: str
    due: datetime
    task_id: str
    owner: RecordOwner

    def record_value(self) -> dict[str, Any]:
        """The value stored as the memory record of kind ``reminder``."""
        return {"text": self.text, "due": self.due.isoformat(), "task_id": self.task_id, "kind": self.kind}


class ReminderScheduler(Protocol):
    """Delivers a reminder when it is due (an event appended to its task)."""

    async def schedule(self, reminder: Reminder) -> None: ...
