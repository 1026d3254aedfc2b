"""Timers and reminders, delivered through the task system: when one is due, a notice event is
appended to the task that set it (after that task's end, which the log allows for this), so every
watcher of the task hears it.

Delivery is at least once: a due reminder is leased like a queued task, the notice is appended, then
the reminder is marked delivered; a dispatcher that dies in between leaves the lease to expire and
another delivers it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.common.v1.task_pb2 import TaskEvent
from hivemesh.mesh.errors import NotFound
from hivemesh.mesh.sql import Writer, is_sqlite, reader, uncancellable
from hivemesh.tasks import schema
from hivemesh.tasks.log import TaskLog

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DueReminder:
    reminder_id: str
    task_id: str
    kind: str
    text: str
    due: float


class ReminderBook:
    """Reminders waiting in the task database (SQLite embedded, PostgreSQL distributed)."""

    def __init__(self, engine: AsyncEngine, writer: Writer) -> None:
        self._engine = engine
        self._writer = writer
        self._reader = reader(engine)

    @uncancellable
    async def schedule(
        self, reminder_id: str, *, task_id: str, tenant_id: str, kind: str, text: str, due: float
    ) -> None:
        """Record a reminder; scheduling the same id again changes nothing."""
        statement = schema.reminders.insert().values(
            reminder_id=reminder_id,
            task_id=task_id,
            tenant_id=tenant_id,
            kind=kind,
            text=text,
            due=due,
            delivered=False,
        )
        try:
            await self._writer.run(lambda conn: conn.execute(statement).rowcount)
        except IntegrityError:
            return

    @uncancellable
    async def claim_due(self, *, lease_s: float, limit: int = 50) -> list[DueReminder]:
        now = time.time()
        r = schema.reminders.c
        ready = (
            select(r.reminder_id)
            .where(
                and_(
                    r.delivered.is_(False),
                    r.due <= now,
                    or_(r.claimed_until.is_(None), r.claimed_until < now),
                )
            )
            .order_by(r.due)
            .limit(limit)
        )
        if not is_sqlite(self._engine):
            ready = ready.with_for_update(skip_locked=True)
        statement = (
            update(schema.reminders)
            .where(r.reminder_id.in_(ready.scalar_subquery()))
            .values(claimed_until=now + lease_s)
            .returning(r.reminder_id, r.task_id, r.kind, r.text, r.due)
        )
        rows = await self._writer.run(lambda conn: conn.execute(statement).all())
        return [DueReminder(str(a), str(b), str(c), str(d), float(e)) for a, b, c, d, e in rows]

    @uncancellable
    async def delivered(self, reminder_id: str) -> None:
        r = schema.reminders.c
        statement = update(schema.reminders).where(r.reminder_id == reminder_id).values(delivered=True)
        await self._writer.run(lambda conn: conn.execute(statement).rowcount)

    @uncancellable
    async def pending(self, task_id: str) -> int:
        r = schema.reminders.c
        async with self._reader.connect() as conn:
            rows = (
                await conn.execute(
                    select(r.reminder_id).where(and_(r.task_id == task_id, r.delivered.is_(False)))
                )
            ).all()
        return len(rows)


def reminder_event(reminder: DueReminder) -> TaskEvent:
    event = TaskEvent()
    event.notice.code = "TIMER_DONE" if reminder.kind == "timer" else "REMINDER_DUE"
    event.notice.message = (
        f"Timer done: {reminder.text}" if reminder.kind == "timer" else f"Reminder: {reminder.text}"
    )
    return event


class ReminderDispatcher:
    """Delivers due reminders every ``interval_s`` (a component of the planner)."""

    def __init__(
        self, book: ReminderBook, log: TaskLog, *, interval_s: float = 0.5, lease_s: float = 30.0
    ) -> None:
        self._book = book
        self._log = log
        self._interval = interval_s
        self._lease = lease_s
        self._job: asyncio.Task[None] | None = None

    async def deliver_due(self) -> int:
        delivered = 0
        for reminder in await self._book.claim_due(lease_s=self._lease):
            with contextlib.suppress(NotFound):  # the task was purged: nothing to tell
                await self._log.append(reminder.task_id, reminder_event(reminder), allow_after_end=True)
            await self._book.delivered(reminder.reminder_id)
            delivered += 1
        return delivered

    async def start(self) -> None:
        self._job = asyncio.create_task(self._run(), name="reminder-dispatch")

    async def stop(self, grace_s: float) -> None:
        if self._job is not None:
            self._job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._job

    async def _run(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                _log.exception("delivering due reminders failed; trying again")
            await asyncio.sleep(self._interval)
