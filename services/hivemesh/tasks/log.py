"""The event-sourced task log on SQL (SQLite embedded, PostgreSQL distributed).

Every change to a task is an event appended with the next ``sequence`` and the hash of the previous
event; the projection row that GetTask and ListTasks read is updated in the same transaction, and
watchers are told only after the transaction has committed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import and_, bindparam, func, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, NoResultFound
from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskState
from hivemesh.mesh.errors import FailedPrecondition, InvalidArgument, NotFound
from hivemesh.mesh.sql import Reader, Statement, Writer, is_sqlite, run_migrations, uncancellable
from hivemesh.tasks import schema
from hivemesh.tasks.notifier import QUEUE_TOPIC, Notifier, ending_topic
from hivemesh.tasks.projection import apply, is_terminal

GENESIS = "0" * 64
MIGRATIONS = Path(__file__).parent / "migrations"


def chain_hash(prev_hash: str, event_bytes: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + event_bytes).hexdigest()


def _timestamp(now: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(now * 1e9))
    return ts


@dataclass(frozen=True)
class Verification:
    """Result of checking a task's hash chain; ``broken_at`` is the first bad sequence, if any."""

    task_id: str
    events: int
    broken_at: int | None
    problem: str

    @property
    def ok(self) -> bool:
        return self.broken_at is None


class TaskTerminal(FailedPrecondition):
    """The task has already ended; nothing more may be appended to it."""

    default_reason = "TASK_ALREADY_ENDED"


class TaskLog:
    """Append-only per-task log plus its projection, and (embedded) the queue rows of new tasks."""

    def __init__(
        self,
        engine: AsyncEngine,
        reads: Reader,
        writer: Writer,
        notifier: Notifier,
        *,
        enqueue_in_sql: bool = True,
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._recent = RecentEvents()
        # Events travel with their wake-ups only to other processes (distributed mode).
        self._shares_events = not enqueue_in_sql
        self._sqlite = is_sqlite(engine)
        # PostgreSQL: the head of each task this process appended to lately, so the next append
        # is one statement instead of three (see ``_append_at_head``).
        self._heads = _Heads() if not self._sqlite else None
        self._reads = reads
        self._notifier = notifier
        self._enqueue_in_sql = enqueue_in_sql

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def migrate(self) -> None:
        await run_migrations(self._engine, MIGRATIONS, "task_alembic_version")

    @uncancellable
    async def submit(
        self,
        task: Task,
        *,
        trace: dict[str, str],
        credential: str = "",
        side: str = "",
        now: float | None = None,
    ) -> tuple[Task, bool]:
        """Record a new task (sequence 1) and queue it, or return the task the tenant already
        submitted with the same request id. The second value says whether it already existed.
        ``credential`` is what its runs act with (kept on the task's row, out of its events);
        ``side`` the side of the planner's canary whose workers take it ('' for any)."""
        stamp = time.time() if now is None else now
        event = TaskEvent(task_id=task.task_id, sequence=1, time=_timestamp(stamp))
        event.submitted.input_text = task.input_text
        event.submitted.scope.CopyFrom(task.scope)
        event.submitted.options.CopyFrom(task.options)
        event.submitted.request_id = task.request_id
        projected = apply(Task(), event)
        payload = event.SerializeToString(deterministic=True)
        first_hash = chain_hash(GENESIS, payload)
        enqueue = self._enqueue_in_sql

        def record(conn: Connection) -> tuple[Task, bool]:
            existing = _by_request(conn, task.scope.tenant_id, task.request_id)
            if existing is not None:
                return existing, True
            _INSERT_TASK.run(
                conn,
                {
                    "task_id": task.task_id,
                    "tenant_id": task.scope.tenant_id,
                    "user_id": task.scope.user_id,
                    "request_id": task.request_id,
                    "state": int(projected.state),
                    "create_time": stamp,
                    "update_time": stamp,
                    "last_sequence": 1,
                    "last_hash": first_hash,
                    "task": projected.SerializeToString(deterministic=True),
                    "credential": credential or None,
                },
            )
            _INSERT_EVENT.run(
                conn,
                {
                    "task_id": task.task_id,
                    "sequence": 1,
                    "event": payload,
                    "prev_hash": GENESIS,
                    "hash": first_hash,
                },
            )
            if enqueue:
                _INSERT_QUEUED.run(
                    conn,
                    {
                        "task_id": task.task_id,
                        "tenant_id": task.scope.tenant_id,
                        "available_at": stamp,
                        "enqueued_at": stamp,
                        "delivery_count": 0,
                        "trace": json.dumps(trace),
                        "dead": False,
                        "side": side,
                    },
                )
            return projected, False

        try:
            stored, existed = await self._writer.run(record)
        except IntegrityError:
            # Another process submitted the same request id between the check and the insert:
            # answer with its task.
            scope = task.scope
            raced = await self._reads.run(lambda conn: _by_request(conn, scope.tenant_id, task.request_id))
            if raced is None:
                raise
            return raced, True
        if not existed:
            self._recent.add(event)
            self._notifier.notify(task.task_id)
            self._notifier.notify(QUEUE_TOPIC)
        return stored, existed

    @uncancellable
    async def append(
        self,
        task_id: str,
        event: TaskEvent,
        *,
        allow_after_end: bool = False,
        requeue: bool = False,
        side: str = "",
    ) -> tuple[TaskEvent, Task]:
        """Append ``event`` (its kind set; task_id, sequence and time are filled in here) and return
        it with the task after it. Raises TaskTerminal once the task has ended, so a late step of a
        canceled task can never change its outcome. ``requeue`` puts the task back on the SQL queue
        in the same transaction (a follow-up answer), for the workers of ``side`` ('' for any)."""
        requeue_in_sql = requeue and self._enqueue_in_sql

        def record(conn: Connection) -> tuple[TaskEvent, Task]:
            return self.append_in(
                conn, task_id, event, allow_after_end=allow_after_end, requeue=requeue_in_sql, side=side
            )

        stored, after = await self._writer.run(record)
        self.published(stored, requeued=requeue)
        return stored, after

    async def append_all(self, task_id: str, events: Sequence[TaskEvent]) -> list[TaskEvent]:
        """Append ``events`` in order in one transaction (see ``append``); watchers hear of them
        once it has committed. Raises TaskTerminal, appending none, if the task has ended."""

        def record(conn: Connection) -> list[TaskEvent]:
            return [self.append_in(conn, task_id, event)[0] for event in events]

        stored = await self._writer.run(record) if events else []
        for event in stored:
            self.published(event)
        return stored

    def published(self, event: TaskEvent, *, requeued: bool = False) -> None:
        """Tell watchers of an event that has just been committed (never before): it is kept in
        memory for this process's watchers, and their wake-ups go out."""
        self._recent.add(event)
        if self._shares_events:
            self._notifier.share(event.task_id, event.SerializeToString())
        else:
            self._notifier.notify(event.task_id)
        if event.WhichOneof("kind") == "canceled":
            self._notifier.notify(ending_topic(event.task_id))
        if requeued:
            self._notifier.notify(QUEUE_TOPIC)

    def heard(self, event_bytes: bytes) -> None:
        """An event another process committed and shared with its wake-up: kept for watchers."""
        try:
            event = TaskEvent.FromString(event_bytes)
        except DecodeError:
            return  # not an event: a plain wake-up
        if event.task_id and event.sequence:
            self._recent.add(event)

    def task_in(self, conn: Connection, task_id: str) -> Task | None:
        """The task as the transaction of ``conn`` sees it (locked for update on PostgreSQL)."""
        return self._lock_task(conn, task_id)

    @staticmethod
    def credential_in(conn: Connection, task_id: str) -> str:
        """The mesh credential the task's runs act with ("" when it has none)."""
        row = _CREDENTIAL.run(conn, {"task_id": task_id}).fetchone()
        return "" if row is None else str(row[0] or "")

    @staticmethod
    def set_credential_in(conn: Connection, task_id: str, credential: str) -> None:
        tasks = schema.tasks
        conn.execute(update(tasks).where(tasks.c.task_id == task_id).values(credential=credential or None))

    @staticmethod
    def read_in(conn: Connection, task_id: str, after_sequence: int, limit: int) -> list[TaskEvent]:
        params = {"task_id": task_id, "after": after_sequence, "limit": limit}
        rows = _READ_EVENTS.run(conn, params).fetchall()
        return [TaskEvent.FromString(r[0]) for r in rows]

    @property
    def writer(self) -> Writer:
        return self._writer

    def recent(self, task_id: str, after_sequence: int) -> list[TaskEvent]:
        """Committed events of ``task_id`` right after ``after_sequence`` that this process wrote
        and still holds in memory (empty when it holds none that follow on without a gap; the log in
        the database is then the place to look)."""
        return self._recent.after(task_id, after_sequence)

    def append_in(
        self,
        conn: Connection,
        task_id: str,
        event: TaskEvent,
        *,
        allow_after_end: bool = False,
        requeue: bool = False,
        side: str = "",
    ) -> tuple[TaskEvent, Task]:
        """``append`` as part of a transaction the caller runs (through the log's writer); the
        caller notifies watchers of ``task_id`` once it has committed."""
        if self._heads is not None and not requeue:
            appended = self._append_at_head(conn, task_id, event, allow_after_end=allow_after_end)
            if appended is not None:
                return appended
        locked = self._lock_row(conn, task_id)
        current = None if locked is None else locked[0]
        if locked is None or current is None:
            raise NotFound(
                f"task {task_id} does not exist", reason="TASK_NOT_FOUND", metadata={"task_id": task_id}
            )
        if is_terminal(current.state) and not allow_after_end:
            raise TaskTerminal(
                f"task {task_id} has already ended ({TaskState.Name(current.state)})",
                metadata={"task_id": task_id, "state": TaskState.Name(current.state)},
            )
        stamp = time.time()
        prev = locked[1] or _previous_hash(conn, task_id, current.last_sequence)
        stored, after, payload, new_hash = _next(task_id, current, event, stamp, prev)
        _INSERT_EVENT.run(
            conn,
            {
                "task_id": task_id,
                "sequence": stored.sequence,
                "event": payload,
                "prev_hash": prev,
                "hash": new_hash,
            },
        )
        _UPDATE_TASK.run(
            conn,
            {
                "key": task_id,
                "state": int(after.state),
                "update_time": stamp,
                "last_sequence": stored.sequence,
                "last_hash": new_hash,
                "task": after.SerializeToString(deterministic=True),
            },
        )
        if requeue:
            _requeue(conn, task_id, after.scope.tenant_id, stamp, side)
        if self._heads is not None:
            self._heads.keep(task_id, after, new_hash)
        return stored, after

    def _append_at_head(
        self, conn: Connection, task_id: str, event: TaskEvent, *, allow_after_end: bool
    ) -> tuple[TaskEvent, Task] | None:
        """Append in one round trip, chained onto the head this process last wrote for the task;
        None (nothing written) when it holds none or the log has moved on since.

        The statement moves the projection only where its ``last_sequence`` and ``last_hash`` are
        still the remembered ones, and inserts the event only when it did, so an append by another
        process (a cancellation from a gateway, a takeover) or a transaction that rolled back after
        the head was remembered makes it write nothing; the caller then takes the locking path.
        The UPDATE locks the row as ``SELECT ... FOR UPDATE`` would, and PostgreSQL re-checks its
        condition against a row that changed while it waited."""
        assert self._heads is not None
        head = self._heads.get(task_id)
        if head is None:
            return None
        current, prev = head
        if is_terminal(current.state) and not allow_after_end:
            return None  # the locking path raises TaskTerminal with the log's own word on it
        stamp = time.time()
        stored, after, payload, new_hash = _next(task_id, current, event, stamp, prev)
        moved = _APPEND_AT_HEAD.run(
            conn,
            {
                "task_id": task_id,
                "expected": current.last_sequence,
                "prev_hash": prev,
                "sequence": stored.sequence,
                "event": payload,
                "hash": new_hash,
                "state": int(after.state),
                "update_time": stamp,
                "task": after.SerializeToString(deterministic=True),
            },
        )
        if moved.rowcount != 1:
            self._heads.forget(task_id)
            return None
        self._heads.keep(task_id, after, new_hash)
        return stored, after

    def _lock_row(self, conn: Connection, task_id: str) -> tuple[Task, str | None] | None:
        """The task and the hash of its last event (None on rows older than revision 0005)."""
        query = _ROW if self._sqlite else _LOCK_ROW
        row = query.run(conn, {"task_id": task_id}).fetchone()
        return None if row is None else (Task.FromString(row[0]), row[1])

    def _lock_task(self, conn: Connection, task_id: str) -> Task | None:
        # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL locks the row.
        query = _GET_TASK if self._sqlite else _LOCK_TASK
        row = query.run(conn, {"task_id": task_id}).fetchone()
        return None if row is None else Task.FromString(row[0])

    @uncancellable
    async def get(self, task_id: str) -> Task | None:
        row = await self._reads.run(lambda conn: _GET_TASK.run(conn, {"task_id": task_id}).fetchone())
        return None if row is None else Task.FromString(row[0])

    @uncancellable
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
    ) -> tuple[list[Task], str]:
        """Newest first. The page token encodes the (create_time, task_id) of the last task seen."""
        conditions = [schema.tasks.c.tenant_id == tenant_id]
        if user_id:
            conditions.append(schema.tasks.c.user_id == user_id)
        if states:
            conditions.append(schema.tasks.c.state.in_([int(s) for s in states]))
        if created_after is not None:
            conditions.append(schema.tasks.c.create_time >= created_after)
        if created_before is not None:
            conditions.append(schema.tasks.c.create_time < created_before)
        if page_token:
            last_time, last_id = _decode_token(page_token)
            conditions.append(
                (schema.tasks.c.create_time < last_time)
                | and_(schema.tasks.c.create_time == last_time, schema.tasks.c.task_id < last_id)
            )
        query = (
            select(schema.tasks.c.task, schema.tasks.c.create_time, schema.tasks.c.task_id)
            .where(and_(*conditions))
            .order_by(schema.tasks.c.create_time.desc(), schema.tasks.c.task_id.desc())
            .limit(page_size + 1)
        )
        rows = await self._reads.run(lambda conn: conn.execute(query).all())
        page = rows[:page_size]
        token = _encode_token(page[-1][1], page[-1][2]) if len(rows) > page_size else ""
        return [Task.FromString(r[0]) for r in page], token

    @uncancellable
    async def read(self, task_id: str, after_sequence: int, limit: int = 500) -> list[TaskEvent]:
        params = {"task_id": task_id, "after": after_sequence, "limit": limit}
        rows = await self._reads.run(lambda conn: _READ_EVENTS.run(conn, params).fetchall())
        return [TaskEvent.FromString(r[0]) for r in rows]

    @uncancellable
    async def verify(self, task_id: str) -> Verification:
        """Recompute the hash chain and check sequences; name the first broken link."""
        query = (
            select(
                schema.events.c.sequence,
                schema.events.c.event,
                schema.events.c.prev_hash,
                schema.events.c.hash,
            )
            .where(schema.events.c.task_id == task_id)
            .order_by(schema.events.c.sequence)
        )
        rows = await self._reads.run(lambda conn: conn.execute(query).all())
        if not rows:
            raise NotFound(
                f"task {task_id} does not exist", reason="TASK_NOT_FOUND", metadata={"task_id": task_id}
            )
        prev = GENESIS
        for expected, (sequence, payload, prev_hash, stored_hash) in enumerate(rows, start=1):
            if sequence != expected:
                return Verification(task_id, len(rows), expected, f"sequence {expected} is missing")
            if prev_hash != prev:
                return Verification(
                    task_id, len(rows), sequence, "does not link to the previous event's hash"
                )
            if chain_hash(prev, payload) != stored_hash:
                return Verification(
                    task_id, len(rows), sequence, "its content does not match its stored hash"
                )
            decoded = TaskEvent.FromString(payload)
            if decoded.sequence != sequence or decoded.task_id != task_id:
                return Verification(task_id, len(rows), sequence, "the event names another task or sequence")
            prev = stored_hash
        return Verification(task_id, len(rows), None, "")

    @uncancellable
    async def waiting(self, *, updated_before: float, limit: int = 1000) -> list[tuple[Task, int]]:
        """Tasks that should be on the queue (SUBMITTED, or WORKING on a claim) and have not
        changed since ``updated_before``, oldest first, each with its state."""
        query = (
            select(schema.tasks.c.task, schema.tasks.c.state)
            .where(
                and_(
                    schema.tasks.c.state.in_(
                        [int(TaskState.TASK_STATE_SUBMITTED), int(TaskState.TASK_STATE_WORKING)]
                    ),
                    schema.tasks.c.update_time < updated_before,
                )
            )
            .order_by(schema.tasks.c.update_time)
            .limit(limit)
        )
        rows = await self._reads.run(lambda conn: conn.execute(query).all())
        return [(Task.FromString(r[0]), int(r[1])) for r in rows]

    @uncancellable
    async def count_by_state(self) -> dict[int, int]:
        query = select(schema.tasks.c.state, func.count()).group_by(schema.tasks.c.state)
        rows = await self._reads.run(lambda conn: conn.execute(query).all())
        return {int(state): int(n) for state, n in rows}


# The statements of the hot path, built once (see ``Statement``).
_TASK_BY_ID = schema.tasks.c.task_id == bindparam("task_id")
_GET_TASK = Statement(select(schema.tasks.c.task).where(_TASK_BY_ID))
_LOCK_TASK = Statement(select(schema.tasks.c.task).where(_TASK_BY_ID).with_for_update())
_ROW = Statement(select(schema.tasks.c.task, schema.tasks.c.last_hash).where(_TASK_BY_ID))
_LOCK_ROW = Statement(
    select(schema.tasks.c.task, schema.tasks.c.last_hash).where(_TASK_BY_ID).with_for_update()
)
_READ_EVENTS = Statement(
    select(schema.events.c.event)
    .where(
        and_(schema.events.c.task_id == bindparam("task_id"), schema.events.c.sequence > bindparam("after"))
    )
    .order_by(schema.events.c.sequence)
    .limit(bindparam("limit"))
)
_PREV_HASH = Statement(
    select(schema.events.c.hash).where(
        and_(
            schema.events.c.task_id == bindparam("task_id"),
            schema.events.c.sequence == bindparam("sequence"),
        )
    )
)
_INSERT_EVENT = Statement(
    schema.events.insert(), columns=("task_id", "sequence", "event", "prev_hash", "hash")
)
_INSERT_TASK = Statement(
    schema.tasks.insert(),
    columns=(
        "task_id",
        "tenant_id",
        "user_id",
        "request_id",
        "state",
        "create_time",
        "update_time",
        "last_sequence",
        "last_hash",
        "task",
        "credential",
    ),
)
_CREDENTIAL = Statement(select(schema.tasks.c.credential).where(_TASK_BY_ID))
_INSERT_QUEUED = Statement(
    schema.queue.insert(),
    columns=(
        "task_id",
        "tenant_id",
        "available_at",
        "enqueued_at",
        "delivery_count",
        "trace",
        "dead",
        "side",
    ),
)
_BY_REQUEST = Statement(
    select(schema.tasks.c.task).where(
        and_(
            schema.tasks.c.tenant_id == bindparam("tenant_id"),
            schema.tasks.c.request_id == bindparam("request_id"),
        )
    )
)
_UPDATE_TASK = Statement(
    update(schema.tasks)
    .where(schema.tasks.c.task_id == bindparam("key"))
    .values(
        state=bindparam("state"),
        update_time=bindparam("update_time"),
        last_sequence=bindparam("last_sequence"),
        last_hash=bindparam("last_hash"),
        task=bindparam("task"),
    )
)


# PostgreSQL only (SQLite has no data-modifying WITH): the event goes in only if the projection
# moved from the head the caller expected.
_APPEND_AT_HEAD = Statement(
    text(
        f"WITH moved AS (UPDATE {schema.tasks.name} SET state = :state, update_time = :update_time, "  # noqa: S608 - names are the schema's, values all bound
        "last_sequence = :sequence, last_hash = :hash, task = :task "
        "WHERE task_id = :task_id AND last_sequence = :expected AND last_hash = :prev_hash "
        f"RETURNING task_id) INSERT INTO {schema.events.name} (task_id, sequence, event, prev_hash, hash) "
        "SELECT task_id, :sequence, :event, :prev_hash, :hash FROM moved"
    ).bindparams(
        bindparam("sequence", type_=schema.events.c.sequence.type),
        bindparam("expected", type_=schema.tasks.c.last_sequence.type),
        bindparam("event", type_=schema.events.c.event.type),
        bindparam("task", type_=schema.tasks.c.task.type),
        bindparam("update_time", type_=schema.tasks.c.update_time.type),
        bindparam("state", type_=schema.tasks.c.state.type),
    )
)


class _Heads:
    """The last projection and hash this process wrote per task, bounded (least recent out)."""

    def __init__(self, size: int = 4096) -> None:
        self._heads: OrderedDict[str, tuple[Task, str]] = OrderedDict()
        self._size = size

    def get(self, task_id: str) -> tuple[Task, str] | None:
        return self._heads.get(task_id)

    def keep(self, task_id: str, task: Task, last_hash: str) -> None:
        if is_terminal(task.state):
            self._heads.pop(task_id, None)  # ended: few appends follow, and they take the long way
            return
        self._heads[task_id] = (task, last_hash)
        self._heads.move_to_end(task_id)
        if len(self._heads) > self._size:
            self._heads.popitem(last=False)

    def forget(self, task_id: str) -> None:
        self._heads.pop(task_id, None)


def _next(
    task_id: str, current: Task, event: TaskEvent, stamp: float, prev_hash: str
) -> tuple[TaskEvent, Task, bytes, str]:
    """The event that follows ``current`` (numbered, timed), the task after it, its bytes as the log
    stores them and its link of the hash chain."""
    stored = TaskEvent()
    stored.CopyFrom(event)
    stored.task_id = task_id
    stored.sequence = current.last_sequence + 1
    stored.time.CopyFrom(_timestamp(stamp))
    payload = stored.SerializeToString(deterministic=True)
    return stored, apply(current, stored), payload, chain_hash(prev_hash, payload)


def _previous_hash(conn: Connection, task_id: str, sequence: int) -> str:
    """The hash of event ``sequence``, read from the log (rows older than revision 0005 lack the
    projection's copy)."""
    row = _PREV_HASH.run(conn, {"task_id": task_id, "sequence": sequence}).fetchone()
    if row is None:
        raise NoResultFound(f"task {task_id} has no event {sequence}")
    return str(row[0])


class RecentEvents:
    """The last events this process committed, per task, for its own watchers. Bounded in tasks and
    in events per task; anything not held is read from the database instead."""

    def __init__(self, *, max_tasks: int = 2048, per_task: int = 64) -> None:
        self._events: OrderedDict[str, list[TaskEvent]] = OrderedDict()
        self._max_tasks = max_tasks
        self._per_task = per_task

    def add(self, event: TaskEvent) -> None:
        held = self._events.get(event.task_id)
        if held and held[-1].sequence >= event.sequence:
            return  # already held (this process's own event coming back), or older
        if held is None or (held and held[-1].sequence != event.sequence - 1):
            held = self._events[event.task_id] = []
        held.append(event)
        if len(held) > self._per_task:
            del held[: len(held) - self._per_task]
        self._events.move_to_end(event.task_id)
        while len(self._events) > self._max_tasks:
            self._events.popitem(last=False)

    def after(self, task_id: str, after_sequence: int) -> list[TaskEvent]:
        held = self._events.get(task_id)
        if not held or held[-1].sequence <= after_sequence or held[0].sequence > after_sequence + 1:
            return []
        return held[after_sequence + 1 - held[0].sequence :]


def _by_request(conn: Connection, tenant_id: str, request_id: str) -> Task | None:
    row = _BY_REQUEST.run(conn, {"tenant_id": tenant_id, "request_id": request_id}).fetchone()
    return None if row is None else Task.FromString(row[0])


def _requeue(conn: Connection, task_id: str, tenant_id: str, stamp: float, side: str) -> None:
    """Queue the task again. The worker that asked the question may not have acknowledged its
    delivery yet (the answer can arrive first): its row then becomes a fresh, unclaimed one, so
    that worker's late acknowledgement, which is conditional on its claim, removes nothing."""
    fresh = {
        "available_at": stamp,
        "enqueued_at": stamp,
        "claimed_by": None,
        "claimed_until": None,
        "delivery_count": 0,
        "trace": "{}",
        "last_error": None,
        "dead": False,
        "side": side,
    }
    reset = conn.execute(update(schema.queue).where(schema.queue.c.task_id == task_id).values(**fresh))
    if not reset.rowcount:
        conn.execute(schema.queue.insert().values(task_id=task_id, tenant_id=tenant_id, **fresh))


def _encode_token(create_time: float, task_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([create_time, task_id]).encode()).decode()


def _decode_token(token: str) -> tuple[float, str]:
    try:
        created, task_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return float(created), str(task_id)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument.field("page_token", "is not a token from a previous response") from exc
