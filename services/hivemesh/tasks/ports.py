"""The task system as its users see it: one port per user, so each adapter behind it (SQL log and
queue, Redis queue, in-process or Redis wake-ups) can be made fast on its own.

- ``TaskBook``: the gateway's. Admit a task, read tasks back, follow one, cancel it, answer its
  question, and handle the dead letters.
- ``WorkQueue``: a planner worker pool's. Claims and their incarnation, the log of the tasks it
  runs, and the wake-ups it waits for.
- ``ReminderBook`` (``hivemesh.tasks.reminders``) is the tool service's: it schedules timers and
  reminders through the task system's store, never through a database of its own.

``TaskSystem`` implements them all; nothing outside ``hivemesh.tasks`` needs to know which adapter
is behind a port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from hivemesh.common.v1.release_pb2 import Release
from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskEvent
from hivemesh.tasks.log import Verification
from hivemesh.tasks.queue import Claim, DeadLetter


@dataclass(frozen=True)
class Start:
    """A claimed task as its worker finds it: ``task`` before the claim's WORKING event; when it
    could run, ``history`` holds its events up to and including that WORKING event."""

    task: Task | None
    history: list[TaskEvent]
    # The mesh credential the run acts with ("" for a task that has none).
    credential: str = ""

    @property
    def started(self) -> bool:
        return bool(self.history)

    @property
    def attempt(self) -> int:
        """The number of the run that starts (``TaskEvent.attempt``); 0 when none does."""
        return self.history[-1].attempt if self.history else 0


class TaskBook(Protocol):
    async def submit(
        self, task: Task, *, trace: dict[str, str], credential: str = "", side: str = ""
    ) -> tuple[Task, bool]:
        """Record and queue a new task, or return the tenant's task with the same request id.
        ``credential`` is the mesh credential its runs act with; ``side`` the side of the planner's
        canary whose workers take it ('' for any: hivemesh.mesh.sides)."""
        ...

    async def backlog(self) -> int:
        """Tasks accepted and not finished (queued, running or waiting to retry)."""
        ...

    async def get(self, task_id: str) -> Task | None: ...

    async def session_release(self, scope: Scope) -> Release | None:
        """The release the newest task of ``scope``'s session that recorded one ran on (the side of
        the planner's canary its next task is for follows it)."""
        ...

    async def list_tasks(
        self,
        tenant_id: str,
        *,
        user_id: str = "",
        states: Sequence[int] = (),
        created_after: float | None = None,
        created_before: float | None = None,
        page_size: int = 50,
        page_token: str = "",
    ) -> tuple[list[Task], str]: ...

    def follow(self, task_id: str, after_sequence: int) -> AsyncIterator[TaskEvent]:
        """The task's events after ``after_sequence``, then live ones until it ends or waits."""
        ...

    async def wait_for_change(self, timeout_s: float) -> None:
        """Return when some task may have changed (any task of any tenant: a hint to look
        again, not a promise), or after ``timeout_s``."""
        ...

    async def cancel(self, task_id: str, reason: str) -> Task:
        """Record the cancellation (raises ``TaskTerminal`` once the task has ended); a task that
        was only queued leaves the queue in the same step."""
        ...

    async def answer(self, task_id: str, text: str, *, credential: str = "", side: str = "") -> Task:
        """Record the answer to the task's question and queue it again (its next run acting with
        ``credential`` when one is given, for the workers of ``side``)."""
        ...

    async def verify(self, task_id: str) -> Verification:
        """Recompute the task's hash chain and check its sequence numbers."""
        ...

    async def dead_letters(
        self, *, tenant_id: str | None, limit: int, after: tuple[float, str] | None
    ) -> list[DeadLetter]: ...

    async def dead_letter_of(self, task_id: str) -> DeadLetter | None: ...

    async def replay(self, task_id: str, *, credential: str = "") -> Task | None:
        """Return a dead letter to the queue with its history kept; None when it is not dead
        (its next run acting with ``credential`` when one is given)."""
        ...

    async def purge(self, task_id: str | None = None, *, tenant_id: str | None = None) -> int: ...


class WorkQueue(Protocol):
    @property
    def heartbeat_s(self) -> float:
        """How often the pool should beat (``beat``) to stay alive."""
        ...

    async def claim(
        self, worker_id: str, visibility_timeout_s: float, *, side: str | None = None
    ) -> Claim | None:
        """Lease the oldest ready task; with ``side``, one for any worker or for that side of the
        planner's canary."""
        ...

    async def begin_run(self, claim: Claim, worker_id: str, working: TaskEvent, *, runnable: bool) -> Start:
        """Read the claimed task and, if it is waiting to run and ``runnable``, record ``working``
        numbered as the task's next attempt and read its history, in one step."""
        ...

    async def record(self, task_id: str, event: TaskEvent) -> TaskEvent:
        """Append an event of a run (raises ``TaskTerminal`` once the task has ended)."""
        ...

    async def record_all(self, task_id: str, events: Sequence[TaskEvent]) -> list[TaskEvent]:
        """Append events of a run, in order, in one transaction (raises ``TaskTerminal`` once the
        task has ended, recording none of them)."""
        ...

    async def finish_run(
        self,
        task_id: str,
        worker_id: str,
        last: TaskEvent | None = None,
        *,
        earlier: Sequence[TaskEvent] = (),
    ) -> None:
        """Record the run's events not yet recorded (``earlier``, then ``last``) and acknowledge the
        claim, in one step where the adapters allow (the events are always recorded before the
        acknowledgement)."""
        ...

    async def get(self, task_id: str) -> Task | None: ...

    async def session_release(self, scope: Scope) -> Release | None:
        """The release the newest task of ``scope``'s session that recorded one ran on (among the
        user's most recent tasks), or None: the session is new to this task system."""
        ...

    async def extend(self, task_id: str, worker_id: str, visibility_timeout_s: float) -> bool: ...

    async def ack(self, task_id: str, worker_id: str) -> None: ...

    async def retry(self, task_id: str, worker_id: str, delay_s: float, error: str) -> None: ...

    async def dead_letter(self, task_id: str, worker_id: str, error: str) -> None: ...

    async def join(self, worker_id: str, name: str) -> int: ...

    async def beat(self, worker_id: str) -> bool: ...

    async def reap(self, silent_for_s: float) -> int: ...

    async def leave(self, worker_id: str) -> None: ...

    async def wait_for_work(self, timeout_s: float) -> None:
        """Return when a task may be waiting (or after ``timeout_s``)."""
        ...

    async def wait_for_end(self, task_id: str, timeout_s: float) -> None:
        """Return when the task may have been ended from outside its run (or after ``timeout_s``)."""
        ...
