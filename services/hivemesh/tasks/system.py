"""Opens the task log and queue chosen by configuration, as one component with a lifecycle.

Embedded (no ``HIVEMESH_REDIS_URL``): the log and the queue share one SQL database (SQLite, or
PostgreSQL from ``HIVEMESH_DATABASE_URL``), so submitting a task is one transaction, and wake-ups are
in-process. Distributed (``HIVEMESH_REDIS_URL`` set): the log stays in SQL, the queue is a Redis
stream and wake-ups go through Redis pub/sub. The log then commits before the enqueue; a task the
log holds as waiting but Redis does not (the enqueue failed, the process died in between, Redis lost
writes in a restart) is enqueued again by a client repeating its submit, and by the sweep here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence

from sqlalchemy.engine import Connection

from hivemesh.common.v1.release_pb2 import Release
from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskState
from hivemesh.mesh.config import Settings
from hivemesh.mesh.errors import HivemeshError
from hivemesh.mesh.sql import Reader, Writer, make_engine, settle, sqlite_url
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.log import TaskLog, TaskTerminal, Verification
from hivemesh.tasks.notifier import ANY_TOPIC, QUEUE_TOPIC, InProcessNotifier, Notifier, ending_topic
from hivemesh.tasks.ports import Start
from hivemesh.tasks.projection import ends_watch, is_terminal
from hivemesh.tasks.queue import Claim, DeadLetter, SqlTaskQueue, TaskQueue
from hivemesh.tasks.reminders import ReminderBook

_log = logging.getLogger(__name__)

# How long a watcher or an idle worker sleeps before looking again when no wake-up arrives
# (another process may have written: the embedded mesh run as separate processes shares one file).
# A watcher that keeps finding nothing new doubles its sleep up to MAX_POLL_INTERVAL_S, so many
# watchers of queued tasks do not cost a read each every few milliseconds.
POLL_INTERVAL_S = 0.02
MAX_POLL_INTERVAL_S = 0.5
# With wake-ups through Redis, polling is only the fallback for a lost wake-up.
REDIS_POLL_INTERVAL_S = 0.25
# How long the backlog count used for admission (queue full?) is reused.
BACKLOG_TTL_S = 0.1
# How many of a user's newest tasks are searched for the release their session is on.
SESSION_LOOKBACK = 50
# A task that has not changed for this long and is not on the Redis queue is enqueued again.
SWEEP_GRACE_S = 5.0


def shared_task_system(settings: Settings, config: TaskConfig) -> TaskSystem:
    """The task system of this process for ``settings``: services that run in one process (the
    embedded mesh) share one engine, one writer and one set of wake-ups, so a task submitted by the
    gateway wakes the planner's workers at once instead of at their next poll. Each user starts and
    stops it; it opens on the first start and closes on the last stop."""
    key = (_database_url(settings), settings.redis_url, config)
    system = _SHARED.get(key)
    if system is None:
        system = TaskSystem(settings, config)
        system._shared_key = key
        _SHARED[key] = system
    return system


def _database_url(settings: Settings) -> str:
    return settings.database_url or sqlite_url(settings.data_dir / "tasks.db")


# States in which a task is on the queue and not yet claimed by a run.
_QUEUED = (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_INPUT_REQUIRED)
# States in which a claimed task is to be run (WORKING: its previous worker died mid-run).
_RUNNABLE = (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)
_HISTORY_LIMIT = 10_000

_SharedKey = tuple[str, str | None, TaskConfig]
_SHARED: dict[_SharedKey, TaskSystem] = {}


# The events after which a task runs no more (a timer's event may still be appended later).
_ENDS = frozenset({"completed", "failed", "canceled"})


class TaskSystem:
    """The task log, the queue and the wake-ups, opened on start and closed on stop. It is the
    gateway's ``TaskBook`` and a planner's ``WorkQueue`` (``hivemesh.tasks.ports``)."""

    def __init__(self, settings: Settings, config: TaskConfig) -> None:
        self.config = config
        self.engine = make_engine(_database_url(settings))
        # Every write to the task database from this process goes through this one writer.
        self.writer = Writer(self.engine)
        self.reads = Reader(self.engine)
        self._users = 0
        self._shared_key: _SharedKey | None = None
        # The last count of the queue, and how many tasks this process had queued when it was taken.
        self._backlog, self._backlog_at, self._counted = 0, float("-inf"), 0
        self._queued = 0  # new tasks this process has queued
        self._sweeper: asyncio.Task[None] | None = None
        if settings.redis_url:
            # Imported only when configured: redis is the optional extra hivemesh[distributed].
            import redis.asyncio as aioredis  # noqa: PLC0415

            from hivemesh.mesh.redis_client import redis_client  # noqa: PLC0415
            from hivemesh.tasks.redis_notifier import RedisNotifier  # noqa: PLC0415
            from hivemesh.tasks.redis_queue import RedisTaskQueue  # noqa: PLC0415

            self.redis: aioredis.Redis | None = redis_client(
                settings.redis_url, socket_connect_timeout=2.0, socket_timeout=5.0
            )
            self._redis_notifier = RedisNotifier(self.redis, self.config.redis_prefix)
            self.notifier: Notifier = self._redis_notifier
            self.redis_queue: RedisTaskQueue | None = RedisTaskQueue(
                self.redis, self.notifier, prefix=self.config.redis_prefix, group=self.config.consumer_group
            )
            self.queue: TaskQueue = self.redis_queue
            self.sql_queue: SqlTaskQueue | None = None
            self.log = TaskLog(self.engine, self.reads, self.writer, self.notifier, enqueue_in_sql=False)
            self._redis_notifier.on_event = self.log.heard
            self.poll_interval_s = REDIS_POLL_INTERVAL_S
        else:
            self.redis = None
            self.redis_queue = None
            self.notifier = InProcessNotifier()
            self.log = TaskLog(self.engine, self.reads, self.writer, self.notifier)
            self.sql_queue = SqlTaskQueue(self.engine, self.reads, self.writer, self.notifier)
            self.queue = self.sql_queue
            self.poll_interval_s = POLL_INTERVAL_S
        self.reminders = ReminderBook(self.engine, self.writer)

    async def start(self) -> None:
        self._users += 1
        if self._users > 1:
            return
        await self.log.migrate()
        if self.redis_queue is not None:
            await self._redis_notifier.start()
            if self.config.sweep_interval_s > 0:
                self._sweeper = asyncio.create_task(self._sweep_forever(), name="task-sweep")

    async def stop(self, grace_s: float) -> None:
        self._users = max(0, self._users - 1)
        if self._users:
            return
        if self._shared_key is not None:
            _SHARED.pop(self._shared_key, None)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self.redis is not None:
            await self._redis_notifier.stop()
            await self.redis.aclose()
        await settle(self.log, self.queue, self.reminders)
        await self.writer.close()
        self.reads.close()
        await self.engine.dispose()

    async def submit(
        self, task: Task, *, trace: dict[str, str], credential: str = "", side: str = ""
    ) -> tuple[Task, bool]:
        """Record a new task and queue it (or return the tenant's task with the same request id).

        With the Redis queue, the log commits first; a repeated submit enqueues again a task that is
        still waiting, so a client retrying after an error never leaves its task stranded."""
        stored, existing = await self.log.submit(task, trace=trace, credential=credential, side=side)
        if self.redis_queue is not None and stored.state == TaskState.TASK_STATE_SUBMITTED:
            await self.redis_queue.enqueue(stored.task_id, stored.scope.tenant_id, trace, side)
        if not existing:
            self._queued += 1  # on the queue now: counted by backlog() until the next count
        return stored, existing

    # ---- TaskBook: the gateway's port ---------------------------------------------------------

    async def backlog(self) -> int:
        """The queue's depth, counted at most every ``BACKLOG_TTL_S`` (plus what this process has
        queued since the count began): admission control needs the size of the backlog, not a scan
        of the queue on every submit. Tasks finished since the count are seen at the next one.

        Never less than this process's own share: a task queued while the count runs may be counted
        twice (for a moment, too many), never not at all. One count runs at a time."""
        now = time.monotonic()
        if now - self._backlog_at > BACKLOG_TTL_S:
            self._backlog_at, counted = now, self._queued
            self._backlog, self._counted = await self.queue.depth(), counted
        return self._backlog + self._queued - self._counted

    async def get(self, task_id: str) -> Task | None:
        return await self.log.get(task_id)

    async def verify(self, task_id: str) -> Verification:
        return await self.log.verify(task_id)

    async def session_release(self, scope: Scope) -> Release | None:
        # The user's newest tasks, by the (tenant, create time) index: a conversation's next turn
        # follows its last within the user's latest SESSION_LOOKBACK tasks.
        recent, _ = await self.log.list_tasks(
            scope.tenant_id, user_id=scope.user_id, page_size=SESSION_LOOKBACK
        )
        for task in recent:
            if task.scope.session_id == scope.session_id and task.release.parts:
                return task.release
        return None

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
        return await self.log.list_tasks(
            tenant_id,
            user_id=user_id,
            states=states,
            created_after=created_after,
            created_before=created_before,
            page_size=page_size,
            page_token=page_token,
        )

    async def cancel(self, task_id: str, reason: str) -> Task:
        event = TaskEvent()
        event.canceled.reason = reason
        sql_queue = self.sql_queue

        def record(conn: Connection) -> tuple[bool, TaskEvent, Task]:
            before = self.log.task_in(conn, task_id)
            stored, after = self.log.append_in(conn, task_id, event)
            # A queued task never reaches a worker; a running one is stopped by its worker.
            queued = before is not None and before.state in _QUEUED
            if queued and sql_queue is not None:
                sql_queue.remove_in(conn, task_id)
            return queued, stored, after

        queued, stored, after = await self.writer.run(record)
        self.log.published(stored)
        if queued and self.redis_queue is not None:
            await self.redis_queue.remove(task_id)
        return after

    async def answer(self, task_id: str, text: str, *, credential: str = "", side: str = "") -> Task:
        event = TaskEvent()
        event.input_received.text = text
        if credential:
            await self._renew(task_id, credential)
        _, after = await self.log.append(task_id, event, requeue=True, side=side)
        await self.requeue(after, side)
        return after

    async def _renew(self, task_id: str, credential: str) -> None:
        """The credential the task's next runs act with (before it is queued again)."""
        await self.writer.run(lambda conn: self.log.set_credential_in(conn, task_id, credential))

    async def dead_letters(
        self, *, tenant_id: str | None, limit: int, after: tuple[float, str] | None
    ) -> list[DeadLetter]:
        return await self.queue.dead_letters(tenant_id=tenant_id, limit=limit, after=after)

    async def dead_letter_of(self, task_id: str) -> DeadLetter | None:
        return await self.queue.dead_letter_of(task_id)

    async def replay(self, task_id: str, *, credential: str = "") -> Task | None:
        """The log gets a state change back to SUBMITTED (allowed after the FAILED end), then the
        queue entry is revived; repeating a replay that stopped half-way finishes it."""
        if await self.queue.dead_letter_of(task_id) is None:
            return None
        if credential:
            await self._renew(task_id, credential)
        task = await self.log.get(task_id)
        if task is not None and task.state == TaskState.TASK_STATE_FAILED:
            event = TaskEvent()
            event.state_changed.state = TaskState.TASK_STATE_SUBMITTED
            event.state_changed.reason = "replayed from the dead-letter queue"
            _, task = await self.log.append(task_id, event, allow_after_end=True)
        await self.queue.replay(task_id)
        return task

    async def purge(self, task_id: str | None = None, *, tenant_id: str | None = None) -> int:
        return await self.queue.purge(task_id, tenant_id=tenant_id)

    # ---- WorkQueue: a planner worker pool's port ---------------------------------------------

    @property
    def heartbeat_s(self) -> float:
        return self.config.worker_heartbeat_s

    async def claim(
        self, worker_id: str, visibility_timeout_s: float, *, side: str | None = None
    ) -> Claim | None:
        return await self.queue.claim(worker_id, visibility_timeout_s, side=side)

    async def begin_run(self, claim: Claim, worker_id: str, working: TaskEvent, *, runnable: bool) -> Start:
        task_id = claim.task_id

        def begin(conn: Connection) -> tuple[Task | None, TaskEvent | None, list[TaskEvent], str]:
            task = self.log.task_in(conn, task_id)
            if not runnable or task is None or task.state not in _RUNNABLE:
                return task, None, [], ""
            numbered = TaskEvent()
            numbered.CopyFrom(working)
            numbered.attempt = task.attempts + 1
            stored, _ = self.log.append_in(conn, task_id, numbered)
            history = self.log.read_in(conn, task_id, 0, _HISTORY_LIMIT)
            return task, stored, history, self.log.credential_in(conn, task_id)

        task, stored, history, credential = await self.writer.run(begin)
        if stored is not None:
            self.log.published(stored)
        return Start(task, history, credential)

    async def record(self, task_id: str, event: TaskEvent) -> TaskEvent:
        stored, _ = await self.log.append(task_id, event)
        return stored

    async def record_all(self, task_id: str, events: Sequence[TaskEvent]) -> list[TaskEvent]:
        return await self.log.append_all(task_id, events)

    async def finish_run(
        self,
        task_id: str,
        worker_id: str,
        last: TaskEvent | None = None,
        *,
        earlier: Sequence[TaskEvent] = (),
    ) -> None:
        sql_queue = self.sql_queue
        events = [*earlier, *([] if last is None else [last])]
        if not events:
            await self.queue.ack(task_id, worker_id)
            return

        def record(conn: Connection) -> list[TaskEvent]:
            stored = [self.log.append_in(conn, task_id, event)[0] for event in events]
            if sql_queue is not None:
                sql_queue.ack_in(conn, task_id, worker_id)
            return stored

        try:
            stored = await self.writer.run(record)
        except TaskTerminal:
            await self.queue.ack(task_id, worker_id)
            raise
        for event in stored:
            self.log.published(event)
        if sql_queue is None:
            await self.queue.ack(task_id, worker_id)

    async def extend(self, task_id: str, worker_id: str, visibility_timeout_s: float) -> bool:
        return await self.queue.extend(task_id, worker_id, visibility_timeout_s)

    async def ack(self, task_id: str, worker_id: str) -> None:
        await self.queue.ack(task_id, worker_id)

    async def retry(self, task_id: str, worker_id: str, delay_s: float, error: str) -> None:
        await self.queue.retry(task_id, worker_id, delay_s, error)

    async def dead_letter(self, task_id: str, worker_id: str, error: str) -> None:
        await self.queue.dead_letter(task_id, worker_id, error)

    async def join(self, worker_id: str, name: str) -> int:
        return await self.queue.join(worker_id, name)

    async def beat(self, worker_id: str) -> bool:
        return await self.queue.beat(worker_id)

    async def reap(self, silent_for_s: float) -> int:
        return await self.queue.reap(silent_for_s)

    async def leave(self, worker_id: str) -> None:
        await self.queue.leave(worker_id)

    async def wait_for_work(self, timeout_s: float) -> None:
        await self.notifier.wait(QUEUE_TOPIC, timeout_s)

    async def wait_for_end(self, task_id: str, timeout_s: float) -> None:
        await self.notifier.wait(ending_topic(task_id), timeout_s)

    async def wait_for_change(self, timeout_s: float) -> None:
        await self.notifier.wait(ANY_TOPIC, timeout_s)

    # ---- the queue's upkeep -------------------------------------------------------------------

    async def requeue(self, task: Task, side: str = "") -> None:
        """After an append with ``requeue=True``: the SQL queue did it in the same transaction."""
        if self.redis_queue is not None:
            await self.redis_queue.requeue(task.task_id, task.scope.tenant_id, side)

    async def sweep(self, *, grace_s: float = SWEEP_GRACE_S) -> int:
        """Enqueue again what the log says is waiting but the Redis queue does not hold, and put
        back on the queue replayed dead letters whose replay stopped half-way. Returns how many."""
        queue = self.redis_queue
        if queue is None:
            return 0
        restored = 0
        waiting = await self.log.waiting(updated_before=time.time() - grace_s)
        held = await queue.holds([task.task_id for task, _ in waiting])
        for (task, _state), present in zip(waiting, held, strict=True):
            if not present and await queue.enqueue(task.task_id, task.scope.tenant_id, {}):
                _log.warning("task %s was waiting in the log but not queued; queued it again", task.task_id)
                restored += 1
        for letter in await queue.dead_letters(limit=1000):
            current = await self.log.get(letter.task_id)
            if current is not None and current.state == TaskState.TASK_STATE_SUBMITTED:
                restored += int(await queue.replay(letter.task_id))
        return restored

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except (HivemeshError, OSError) as exc:
                _log.warning("the queue sweep failed (%s); trying again later", exc)
            except Exception:
                _log.exception("the queue sweep failed; trying again later")
            await asyncio.sleep(self.config.sweep_interval_s)

    async def _still_paused(self, task_id: str, sequence: int) -> bool:
        # A replayed question that has since been answered is not the end of the stream.
        # Events recorded after the end (a timer going off) are replayed too.
        task = await self.log.get(task_id)
        return task is None or task.last_sequence == sequence

    async def follow(self, task_id: str, after_sequence: int) -> AsyncIterator[TaskEvent]:
        """Replay the log after ``after_sequence``, then follow new events until the task ends or
        waits for input. Events come in sequence order with no gap and no duplicate: from the log,
        or, for events this process has just committed, from memory, where a batch is used only if
        it follows on from the last event given."""
        last = after_sequence
        # From memory when this process holds the events (it has just submitted the task, or heard
        # of them): a batch there follows on from ``last`` with no gap, like one read from the log.
        batch = self.log.recent(task_id, last)
        live = bool(batch)
        if not live:
            batch = await self.log.read(task_id, last)
        poll_s = self.poll_interval_s
        while True:
            for event in batch:
                last = event.sequence
                yield event
                if not ends_watch(event):
                    continue
                # The task's end, just heard of and the newest event known here, needs no read of
                # the log to confirm it; a question (which an answer may follow) or an end read
                # back from the log (which a later timer's event may follow) does.
                if live and event is batch[-1] and event.WhichOneof("kind") in _ENDS:
                    return
                if await self._still_paused(task_id, event.sequence):
                    return
            if batch:
                poll_s = self.poll_interval_s
            else:
                task = await self.log.get(task_id)
                if task is None or (is_terminal(task.state) and last >= task.last_sequence):
                    return
                poll_s = min(MAX_POLL_INTERVAL_S, poll_s * 2)
            # Sleep only when nothing newer is in memory; checked right before the wait, with no
            # await in between, so an event committed by this process cannot slip past.
            batch = self.log.recent(task_id, last)
            if not batch:
                await self.notifier.wait(task_id, poll_s)
                batch = self.log.recent(task_id, last)
            live = bool(batch)
            if not live:
                batch = await self.log.read(task_id, last)
