"""The task queue port and its SQL adapter (the embedded default).

Delivery is at least once: a claim is a lease that expires after the visibility timeout, so a task
whose worker died is claimed again by another worker; a task leaves the queue only when its worker
acknowledges it after its outcome is in the log. Retryable failures come back after an exponential
backoff with jitter; after ``max_attempts`` deliveries the task is moved to the dead-letter queue.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Float, Select, Update, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from hivemesh.mesh.sql import Reader, Statement, Writer, is_sqlite, uncancellable
from hivemesh.tasks import schema
from hivemesh.tasks.notifier import QUEUE_TOPIC, Notifier


@dataclass(frozen=True)
class Claim:
    """A leased task: who holds it, how often it has been delivered, and its trace context."""

    task_id: str
    tenant_id: str
    delivery_count: int
    trace: dict[str, str]


@dataclass(frozen=True)
class DeadLetter:
    task_id: str
    tenant_id: str
    delivery_count: int
    last_error: str
    enqueued_at: float


class TaskQueue(Protocol):
    async def claim(
        self, worker_id: str, visibility_timeout_s: float, *, side: str | None = None
    ) -> Claim | None:
        """Lease the oldest ready task; with ``side``, only a task for any worker or for that side
        of the planner's canary (a task's side is set when it is queued)."""
        ...

    async def extend(self, task_id: str, worker_id: str, visibility_timeout_s: float) -> bool: ...

    async def ack(self, task_id: str, worker_id: str) -> None: ...

    async def retry(self, task_id: str, worker_id: str, delay_s: float, error: str) -> None: ...

    async def dead_letter(self, task_id: str, worker_id: str, error: str) -> None: ...

    async def depth(self) -> int: ...

    async def dead_count(self) -> int:
        """How many tasks are in the dead-letter queue."""
        ...

    async def dead_letters(
        self, *, tenant_id: str | None = None, limit: int = 100, after: tuple[float, str] | None = None
    ) -> list[DeadLetter]:
        """Dead letters in (enqueued_at, task_id) order, after ``after``; one tenant's or all."""
        ...

    async def dead_letter_of(self, task_id: str) -> DeadLetter | None: ...

    async def replay(self, task_id: str) -> bool:
        """Put a dead letter back on the queue with a fresh delivery count; False if not dead."""
        ...

    async def purge(self, task_id: str | None = None, *, tenant_id: str | None = None) -> int:
        """Drop one dead letter, or all of them (of one tenant); returns how many went."""
        ...

    async def remove(self, task_id: str) -> None: ...

    async def join(self, worker_id: str, name: str) -> int:
        """Register a worker incarnation. Earlier incarnations with the same ``name`` (the process
        this one replaces after a crash) are declared dead at once; returns how many claims that
        released."""
        ...

    async def beat(self, worker_id: str) -> bool:
        """The incarnation is alive (called every heartbeat interval). False when it is no longer
        registered (it was declared dead while alive, say after a long pause): it should join again."""
        ...

    async def reap(self, silent_for_s: float) -> int:
        """Declare dead the incarnations that have not beaten for ``silent_for_s``; their claims
        become claimable now instead of when their leases run out. Returns how many claims."""
        ...

    async def leave(self, worker_id: str) -> None:
        """The incarnation stopped cleanly (its claims were given back one by one)."""
        ...


def _release(conn: Connection, worker_ids: list[str]) -> int:
    """Forget the incarnations ``worker_ids`` and make their claims claimable now (each claim keeps
    its delivery count, so a task that keeps killing its workers still ends in the dead letters)."""
    if not worker_ids:
        return 0
    q = schema.queue.c
    released = conn.execute(
        update(schema.queue)
        .where(and_(q.claimed_by.in_(worker_ids), q.dead.is_(False)))
        .values(claimed_by=None, claimed_until=None)
    ).rowcount
    conn.execute(schema.workers.delete().where(schema.workers.c.worker_id.in_(worker_ids)))
    return int(released)


def _ready_statement(*, sided: bool) -> Select[tuple[str]]:
    """The oldest task ready to be claimed (``now`` bound at execution, and ``for_side`` when
    ``sided``: then only a task for any worker or for that side of the planner's canary)."""
    q = schema.queue.c
    now: BindParameter[float] = bindparam("now", type_=Float)
    conditions = [
        q.dead.is_(False),
        q.available_at <= now,
        or_(q.claimed_until.is_(None), q.claimed_until < now),
    ]
    if sided:
        conditions.append(or_(q.side == "", q.side == bindparam("for_side")))
    return select(q.task_id).where(and_(*conditions)).order_by(q.available_at).limit(1)


def _claim_statement(*, skip_locked: bool, sided: bool) -> Update:
    """Claim the oldest ready task (built once; ``now``, ``worker`` and ``until`` are bound, and
    ``for_side`` when ``sided``)."""
    q = schema.queue.c
    ready = _ready_statement(sided=sided)
    if skip_locked:
        ready = ready.with_for_update(skip_locked=True)
    return (
        update(schema.queue)
        .where(q.task_id == ready.scalar_subquery())
        .values(
            claimed_by=bindparam("worker"),
            claimed_until=bindparam("until"),
            delivery_count=q.delivery_count + 1,
        )
        .returning(q.task_id, q.tenant_id, q.delivery_count, q.trace)
    )


# Read first, so that a worker finding the queue empty (the claim after the last ready task, and
# every poll of an idle queue) takes no write transaction. Keyed by sided (and SQLite: it has no
# row locks to skip).
_READY = {sided: Statement(_ready_statement(sided=sided)) for sided in (True, False)}
_CLAIMS = {
    (sqlite, sided): Statement(_claim_statement(skip_locked=not sqlite, sided=sided))
    for sqlite in (True, False)
    for sided in (True, False)
}
_ACK = Statement(
    schema.queue.delete().where(
        and_(schema.queue.c.task_id == bindparam("task_id"), schema.queue.c.claimed_by == bindparam("worker"))
    )
)
_DEPTH = Statement(select(func.count()).where(schema.queue.c.dead.is_(False)))


def backoff(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**(attempt-1))]."""
    ceiling = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


class SqlTaskQueue:
    """Queue rows in the same database as the task log (so submitting is one transaction)."""

    def __init__(self, engine: AsyncEngine, reads: Reader, writer: Writer, notifier: Notifier) -> None:
        self._engine = engine
        self._writer = writer
        self._reads = reads
        self._notifier = notifier

    @uncancellable
    async def claim(
        self, worker_id: str, visibility_timeout_s: float, *, side: str | None = None
    ) -> Claim | None:
        now = time.time()
        sided = side is not None
        statement = _CLAIMS[is_sqlite(self._engine), sided]
        found: dict[str, object] = {"now": now} if side is None else {"now": now, "for_side": side}
        ready = _READY[sided]
        if await self._reads.run(lambda conn: ready.run(conn, found).fetchone()) is None:
            return None
        params = {**found, "worker": worker_id, "until": now + visibility_timeout_s}
        row = await self._writer.run(lambda conn: statement.run(conn, params).fetchone())
        if row is None:
            return None
        return Claim(str(row[0]), str(row[1]), int(row[2]), dict(json.loads(row[3] or "{}")))

    @uncancellable
    async def extend(self, task_id: str, worker_id: str, visibility_timeout_s: float) -> bool:
        q = schema.queue.c
        statement = (
            update(schema.queue)
            .where(and_(q.task_id == task_id, q.claimed_by == worker_id))
            .values(claimed_until=time.time() + visibility_timeout_s)
        )
        return bool(await self._writer.run(lambda conn: conn.execute(statement).rowcount))

    @staticmethod
    def ack_in(conn: Connection, task_id: str, worker_id: str) -> None:
        """``ack`` as part of a transaction the caller runs through the writer."""
        _ACK.run(conn, {"task_id": task_id, "worker": worker_id})

    @staticmethod
    def remove_in(conn: Connection, task_id: str) -> None:
        conn.execute(schema.queue.delete().where(schema.queue.c.task_id == task_id))

    @uncancellable
    async def ack(self, task_id: str, worker_id: str) -> None:
        await self._writer.run(lambda conn: self.ack_in(conn, task_id, worker_id))

    @uncancellable
    async def retry(self, task_id: str, worker_id: str, delay_s: float, error: str) -> None:
        q = schema.queue.c
        statement = (
            update(schema.queue)
            .where(and_(q.task_id == task_id, q.claimed_by == worker_id))
            .values(available_at=time.time() + delay_s, claimed_by=None, claimed_until=None, last_error=error)
        )
        await self._writer.run(lambda conn: conn.execute(statement).rowcount)
        self._notifier.notify(QUEUE_TOPIC)

    @uncancellable
    async def dead_letter(self, task_id: str, worker_id: str, error: str) -> None:
        q = schema.queue.c
        statement = (
            update(schema.queue)
            .where(and_(q.task_id == task_id, q.claimed_by == worker_id))
            .values(dead=True, claimed_by=None, claimed_until=None, last_error=error)
        )
        await self._writer.run(lambda conn: conn.execute(statement).rowcount)

    @uncancellable
    async def remove(self, task_id: str) -> None:
        statement = schema.queue.delete().where(schema.queue.c.task_id == task_id)
        await self._writer.run(lambda conn: conn.execute(statement).rowcount)

    @uncancellable
    async def join(self, worker_id: str, name: str) -> int:
        w, now = schema.workers.c, time.time()

        def register(conn: Connection) -> int:
            same_name = conn.execute(select(w.worker_id).where(w.name == name)).all()
            released = _release(conn, [r[0] for r in same_name if r[0] != worker_id])
            conn.execute(schema.workers.delete().where(w.worker_id == worker_id))
            conn.execute(
                schema.workers.insert().values(worker_id=worker_id, name=name, started_at=now, beat_at=now)
            )
            return released

        released = await self._writer.run(register)
        if released:
            self._notifier.notify(QUEUE_TOPIC)
        return released

    @uncancellable
    async def beat(self, worker_id: str) -> bool:
        w = schema.workers.c
        statement = update(schema.workers).where(w.worker_id == worker_id).values(beat_at=time.time())
        return bool(await self._writer.run(lambda conn: conn.execute(statement).rowcount))

    @uncancellable
    async def reap(self, silent_for_s: float) -> int:
        w = schema.workers.c
        cutoff = time.time() - silent_for_s

        def declare_dead(conn: Connection) -> int:
            silent = [r[0] for r in conn.execute(select(w.worker_id).where(w.beat_at < cutoff)).all()]
            return _release(conn, silent)

        released = await self._writer.run(declare_dead)
        if released:
            self._notifier.notify(QUEUE_TOPIC)
        return released

    @uncancellable
    async def leave(self, worker_id: str) -> None:
        await self._writer.run(lambda conn: _release(conn, [worker_id]))

    @uncancellable
    async def depth(self) -> int:
        return int(await self._reads.run(lambda conn: _DEPTH.run(conn, {}).fetchone()[0]))

    @uncancellable
    async def dead_count(self) -> int:
        query = select(func.count()).where(schema.queue.c.dead.is_(True))
        return int(await self._reads.run(lambda conn: conn.execute(query).scalar_one()))

    @uncancellable
    async def dead_letters(
        self, *, tenant_id: str | None = None, limit: int = 100, after: tuple[float, str] | None = None
    ) -> list[DeadLetter]:
        q = schema.queue.c
        conditions: list[ColumnElement[bool]] = [q.dead.is_(True)]
        if tenant_id is not None:
            conditions.append(q.tenant_id == tenant_id)
        if after is not None:
            conditions.append(
                or_(q.enqueued_at > after[0], and_(q.enqueued_at == after[0], q.task_id > after[1]))
            )
        query = (
            select(q.task_id, q.tenant_id, q.delivery_count, q.last_error, q.enqueued_at)
            .where(and_(*conditions))
            .order_by(q.enqueued_at, q.task_id)
            .limit(limit)
        )
        rows = await self._reads.run(lambda conn: conn.execute(query).all())
        return [DeadLetter(str(r[0]), str(r[1]), int(r[2]), str(r[3] or ""), float(r[4])) for r in rows]

    @uncancellable
    async def dead_letter_of(self, task_id: str) -> DeadLetter | None:
        q = schema.queue.c
        query = select(q.task_id, q.tenant_id, q.delivery_count, q.last_error, q.enqueued_at).where(
            and_(q.task_id == task_id, q.dead.is_(True))
        )
        r = await self._reads.run(lambda conn: conn.execute(query).first())
        if r is None:
            return None
        return DeadLetter(str(r[0]), str(r[1]), int(r[2]), str(r[3] or ""), float(r[4]))

    @uncancellable
    async def replay(self, task_id: str) -> bool:
        q = schema.queue.c
        statement = (
            update(schema.queue)
            .where(and_(q.task_id == task_id, q.dead.is_(True)))
            .values(
                dead=False, delivery_count=0, available_at=time.time(), claimed_by=None, claimed_until=None
            )
        )
        replayed = await self._writer.run(lambda conn: conn.execute(statement).rowcount)
        self._notifier.notify(QUEUE_TOPIC)
        return bool(replayed)

    @uncancellable
    async def purge(self, task_id: str | None = None, *, tenant_id: str | None = None) -> int:
        q = schema.queue.c
        conditions: list[ColumnElement[bool]] = [q.dead.is_(True)]
        if task_id is not None:
            conditions.append(q.task_id == task_id)
        if tenant_id is not None:
            conditions.append(q.tenant_id == tenant_id)
        statement = schema.queue.delete().where(and_(*conditions))
        return int(await self._writer.run(lambda conn: conn.execute(statement).rowcount))
