"""A concurrency limit that refuses instead of queueing: a caller told RESOURCE_EXHAUSTED with a
retry delay can go elsewhere, while a queue behind a slow tool, a busy server or a greedy tenant
only grows its latency. Used for a tool's calls, a server's calls and a tenant's calls."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Bulkhead:
    limit: int
    running: int = 0

    def try_enter(self) -> bool:
        if self.running >= self.limit:
            return False
        self.running += 1
        return True

    def leave(self) -> None:
        self.running -= 1
