"""In-memory implementations of the tool service's ports, for unit tests of the built-ins."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hivemesh.tool.model import Owner, ToolCall, ToolContext, ToolDeps
from hivemesh.tool.ports import RecordOwner, Reminder, StoredRecord, VersionConflict

NOW = datetime(2026, 11, 25, 14, 5, 0, tzinfo=UTC)
OWNER = Owner("acme", "ada", "s1")


@dataclass
class InMemoryRecords:
    """Records with the memory service's version rules (0: unconditional, -1: create only)."""

    records: dict[tuple[RecordOwner, str, str], StoredRecord] = field(default_factory=dict)

    async def get(self, owner: RecordOwner, kind: str, key: str) -> StoredRecord | None:
        return self.records.get((owner, kind, key))

    async def put(
        self, owner: RecordOwner, kind: str, key: str, value: Mapping[str, Any], *, expected_version: int
    ) -> StoredRecord:
        current = self.records.get((owner, kind, key))
        version = current.version if current else 0
        if (expected_version == -1 and current is not None) or (
            expected_version > 0 and expected_version != version
        ):
            raise VersionConflict(kind, key)
        stored = StoredRecord(dict(value), version + 1)
        self.records[(owner, kind, key)] = stored
        return stored

    async def delete(self, owner: RecordOwner, kind: str, key: str) -> bool:
        return self.records.pop((owner, kind, key), None) is not None


@dataclass
class RecordingScheduler:
    scheduled: list[Reminder] = field(default_factory=list)

    async def schedule(self, reminder: Reminder) -> None:
        self.scheduled.append(reminder)


def deps(records: InMemoryRecords | None = None, scheduler: RecordingScheduler | None = None) -> ToolDeps:
    return ToolDeps(
        records=records or InMemoryRecords(),
        scheduler=scheduler or RecordingScheduler(),
        clock=lambda: NOW,
        random=random.Random(7),
    )


def context(
    tool: str, tool_deps: ToolDeps, *, owner: Owner = OWNER, key: str = "", task_id: str = "t-1"
) -> ToolContext:
    return ToolContext(ToolCall(tool, {}, key, owner, task_id), tool_deps)
