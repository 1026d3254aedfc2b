"""Queue workers: claim tasks, run them under their deadline, record the outcome, then acknowledge.

At-least-once: the claim is a lease kept alive by a heartbeat; a worker that dies stops renewing it
and another worker takes the task over after the visibility timeout. The outcome is in the log
before the acknowledgement, so a crash between the two only repeats the acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

from opentelemetry import context as otel_context
from opentelemetry import trace

from hivemesh.common.v1.release_pb2 import Release
from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskState
from hivemesh.mesh import deadlines, genai, telemetry
from hivemesh.mesh.config import Settings
from hivemesh.mesh.credentials import acting_as
from hivemesh.mesh.errors import HivemeshError, Unauthenticated, Unavailable
from hivemesh.mesh.metrics import Metrics, state_label
from hivemesh.mesh.releases import RunRelease
from hivemesh.mesh.sides import NAMED_SIDES, routed
from hivemesh.planner.ports import Outcome, Releases, Strategy
from hivemesh.planner.runner import deadline_failure, failure_of
from hivemesh.tasks.config import WORKER_SILENCE_BEATS, TaskConfig
from hivemesh.tasks.log import TaskTerminal
from hivemesh.tasks.ports import WorkQueue
from hivemesh.tasks.projection import is_terminal
from hivemesh.tasks.queue import Claim, backoff
from hivemesh.tasks.system import POLL_INTERVAL_S

_log = logging.getLogger(__name__)
_SERVICE_NAME = telemetry.service_name("planner")


# How long a run's event may wait to be recorded with the events after it: a run's events then
# reach the log in a few transactions instead of one each, and a watcher hears of each event at
# most this much later.
EVENT_HOLD_S = 0.05


class LogSink:
    """Appends a run's events to the task log, each numbered with the run's attempt, so a watcher
    can tell a superseded run's answer from the current one's.

    An event waits up to ``EVENT_HOLD_S`` for the ones after it and they are recorded together, in
    order, in one transaction; the run's closing ``completed`` event, and whatever still waits, is
    recorded with the claim's acknowledgement (``WorkQueue.finish_run``). Nobody hears of an event
    before it is recorded, so one that a crash loses was never seen: the next run does its step
    again (a tool call with the same idempotency key, which the tool service answers once)."""

    def __init__(self, tasks: WorkQueue, task_id: str, attempt: int) -> None:
        self._tasks = tasks
        self._task_id = task_id
        self._attempt = attempt
        self.closing: TaskEvent | None = None
        self._waiting: list[TaskEvent] = []
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    async def emit(self, event: TaskEvent) -> TaskEvent:
        if self._failure is not None:
            raise self._failure
        event.attempt = self._attempt
        if event.WhichOneof("kind") == "completed":
            self.closing = event
            return event
        self._waiting.append(event)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(EVENT_HOLD_S, self._write_soon)
        return event

    def waiting(self) -> list[TaskEvent]:
        """The events not recorded yet, for ``finish_run``; the sink holds none afterwards."""
        self._cancel_timer()
        waiting, self._waiting = self._waiting, []
        return waiting

    async def flush(self) -> None:
        """Record the events still waiting (a run that failed: before its failure is recorded)."""
        await self.settled()
        waiting = self.waiting()
        if waiting:
            await self._tasks.record_all(self._task_id, waiting)

    async def settled(self) -> None:
        """Wait for a write under way; raise what an earlier one failed with."""
        if self._writing is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writing)
        if self._failure is not None:
            raise self._failure

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _write_soon(self) -> None:
        self._timer = None
        if self._writing is not None and not self._writing.done():
            self._timer = asyncio.get_running_loop().call_later(EVENT_HOLD_S, self._write_soon)
            return
        waiting, self._waiting = self._waiting, []
        if waiting:
            self._writing = asyncio.create_task(self._write(waiting), name=f"events-{self._task_id}")

    async def _write(self, events: list[TaskEvent]) -> None:
        try:
            await self._tasks.record_all(self._task_id, events)
        except Exception as exc:  # the run hears of it at its next event or at its end
            self._failure = exc


class WorkerPool:
    """Runs up to ``concurrency`` tasks at once from the queue."""

    def __init__(
        self,
        tasks: WorkQueue,
        runner: Callable[[], Strategy],
        settings: Settings,
        metrics: Metrics,
        *,
        concurrency: int,
        name: str | None = None,
        releases: Releases | None = None,
        sticky: bool = False,
        queue: TaskConfig | None = None,
    ) -> None:
        self._tasks = tasks
        self._runner = runner
        self._settings = settings
        self._metrics = metrics
        self._releases = releases
        # The lease each claim takes and the deliveries a task gets (``TaskConfig``).
        self._queue = queue or TaskConfig()
        # Runs call on the side of a canary their session started on (``PlannerConfig.sticky_sessions``).
        self._sticky = sticky
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._concurrency = concurrency
        self._running: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # This process's incarnation: every claim names it. ``name`` is what survives a restart
        # (host and port): a new incarnation with the same name declares the old one dead.
        self.worker_id = f"planner-{uuid.uuid4().hex[:12]}"
        self.name = name or self.worker_id
        self._liveness: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._concurrency > 0:
            released = await self._tasks.join(self.worker_id, self.name)
            if released:
                _log.warning(
                    "took back %d task(s) claimed by the previous incarnation of %s", released, self.name
                )
            self._liveness = asyncio.create_task(self._keep_alive(), name="planner-liveness")
            self._dispatcher = asyncio.create_task(self._dispatch(), name="planner-dispatch")

    async def _keep_alive(self) -> None:
        """Beat, and declare dead the incarnations that stopped beating, so a crashed peer's tasks
        are taken over within seconds rather than when their leases run out."""
        interval = self._tasks.heartbeat_s
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self._tasks.beat(self.worker_id):
                    await self._tasks.join(self.worker_id, self.name)
                released = await self._tasks.reap(interval * WORKER_SILENCE_BEATS)
                if released:
                    _log.warning("took over %d task(s) from worker(s) that stopped beating", released)
            except Exception as exc:
                _log.warning("the worker heartbeat failed (%s); trying again", exc)

    async def stop(self, grace_s: float) -> None:
        """Stop claiming; give running tasks the grace period, then cancel them and give their
        claims back so another worker takes them over at once."""
        self._stopping.set()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        if self._running:
            _done, pending = await asyncio.wait(set(self._running), timeout=grace_s)
            for job in pending:
                job.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        # Beating until here: a pool finishing its tasks in the grace period is not declared dead.
        if self._liveness is not None:
            self._liveness.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._liveness
            with contextlib.suppress(Exception):
                await self._tasks.leave(self.worker_id)

    async def _dispatch(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            await self._slots.acquire()
            claim: Claim | None = None
            try:
                claim = await self._tasks.claim(
                    self.worker_id, self._queue.visibility_timeout_s, side=await self._own_side()
                )
                failures = 0
            except Exception as exc:
                # The queue is down (Redis restarting, the database failing over): back off and try
                # again; nothing is lost, the claims held stay pending until it is back.
                failures += 1
                _log.warning("claiming from the queue failed (%s); retrying", exc)
                self._slots.release()
                await asyncio.sleep(min(2.0, 0.05 * 2**failures))
                continue
            if claim is None:
                self._slots.release()
                await self._tasks.wait_for_work(POLL_INTERVAL_S * 5)
                continue
            job = asyncio.create_task(self._handle(claim), name=f"task-{claim.task_id}")
            self._running.add(job)
            job.add_done_callback(self._finished)

    def _finished(self, job: asyncio.Task[None]) -> None:
        self._running.discard(job)
        self._slots.release()

    async def _handle(self, claim: Claim) -> None:
        # Every delivery of the task (retries, take-overs) continues the trace its submission began.
        parent = telemetry.extract(claim.trace)
        token = otel_context.attach(parent)
        named = telemetry.serving_as(_SERVICE_NAME) if telemetry.recording() else None
        try:
            with telemetry.span(
                f"{genai.INVOKE_AGENT} {genai.AGENT_NAME}",
                attributes={
                    genai.OPERATION_NAME: genai.INVOKE_AGENT,
                    genai.AGENT_NAME_KEY: genai.AGENT_NAME,
                    genai.TASK_ID: claim.task_id,
                    genai.DELIVERY: claim.delivery_count,
                },
            ):
                await self._handle_claim(claim)
        except asyncio.CancelledError:
            # Shutting down mid-task: give the claim back so another worker resumes it now.
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._tasks.retry(claim.task_id, self.worker_id, 0.0, "worker shut down")
                )
            raise
        except Exception as exc:
            _log.exception("task %s: unexpected failure in the worker", claim.task_id)
            with contextlib.suppress(Exception):
                await self._failed_attempt(
                    claim, None, Unavailable(f"the worker failed: {exc!r}", reason="WORKER_ERROR")
                )
        finally:
            if named is not None:
                telemetry.reset_serving(named)
            otel_context.detach(token)

    async def _handle_claim(self, claim: Claim) -> None:
        working = TaskEvent()
        working.state_changed.state = TaskState.TASK_STATE_WORKING
        working.state_changed.reason = f"claimed by {self.worker_id} (delivery {claim.delivery_count})"
        run_release = await self._release(claim)
        release = None if run_release is None else run_release.release
        if release is not None:
            working.state_changed.release.CopyFrom(release)
        # Delivered again and again without an outcome, its workers keep dying on it: not run.
        runnable = claim.delivery_count <= self._queue.max_attempts
        start = await self._tasks.begin_run(claim, self.worker_id, working, runnable=runnable)
        task = start.task
        if task is not None:
            genai.describe_task(trace.get_current_span(), task, start.attempt)
        if task is not None and task.state == TaskState.TASK_STATE_FAILED and task.error.retryable:
            # A worker recorded the final failure and died before moving the task to the
            # dead-letter queue: finish that move.
            await self._tasks.dead_letter(claim.task_id, self.worker_id, _last_error(task))
            return
        if task is None or is_terminal(task.state) or task.state == TaskState.TASK_STATE_INPUT_REQUIRED:
            await self._tasks.ack(claim.task_id, self.worker_id)
            return
        if not start.started:
            await self._failed_attempt(
                claim,
                task,
                Unavailable(
                    f"the task was delivered {claim.delivery_count} times without finishing",
                    reason="TOO_MANY_DELIVERIES",
                ),
            )
            return
        if self._settings.mesh_auth and not start.credential:
            await self._fail(
                task,
                Unauthenticated(
                    "the task carries no mesh credential (it was submitted before credentials were "
                    "required); submit it again",
                    reason="CREDENTIAL_MISSING",
                ),
                start.attempt,
                release,
            )
            return
        heartbeat = asyncio.create_task(self._heartbeat(claim.task_id))
        try:
            # Every call of the run acts for the task's user, on the sides of a canary its session
            # is on.
            with acting_as(start.credential), routed(run_release.sides if run_release else {}):
                await self._run(claim, task, start.history, start.attempt, release)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _own_side(self) -> str | None:
        """The side of the planner's canary whose tasks to claim (None: any), during a canary with
        sticky sessions; claiming never waits for want of it."""
        if self._releases is None or not self._sticky:
            return None
        try:
            return await self._releases.own_side()
        except Exception as exc:
            _log.warning("the side of this planner could not be read (%s); claiming any task", exc)
            return None

    async def _release(self, claim: Claim) -> RunRelease | None:
        """The release the run starts on; a run is never held up for want of it."""
        if self._releases is None:
            return None
        try:
            if not self._sticky:
                return await self._releases.current()
            task = await self._tasks.get(claim.task_id)
            if task is None:
                return await self._releases.current()
            named = NAMED_SIDES.get(task.options.side)
            if named is not None:
                return await self._releases.current(side=named)

            claimed: Task = task

            async def pinned() -> Release | None:
                """The release the task's session is on: the task's own from an earlier run (a
                retry, an answered question), else the one the session's latest task recorded."""
                if claimed.release.parts:
                    return claimed.release
                return await self._tasks.session_release(claimed.scope)

            return await self._releases.current(pinned)
        except Exception as exc:
            _log.warning("the release could not be read (%s); the run records none", exc)
            return None

    async def _heartbeat(self, task_id: str) -> None:
        interval = max(0.05, self._queue.visibility_timeout_s / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._tasks.extend(task_id, self.worker_id, self._queue.visibility_timeout_s)
            except Exception as exc:
                # The queue is briefly unreachable: keep working; the next beat tries again.
                _log.warning("task %s: renewing the claim failed (%s)", task_id, exc)

    async def _run(
        self, claim: Claim, task: Task, history: list[TaskEvent], attempt: int, release: Release | None
    ) -> None:
        sink = LogSink(self._tasks, task.task_id, attempt)
        deadline_s = task.options.deadline.ToTimedelta().total_seconds() or self._settings.task_deadline_s
        left = task.create_time.ToNanoseconds() / 1e9 + deadline_s - time.time()
        run = asyncio.create_task(self._runner().run(task, history, sink))
        canceled = asyncio.Event()
        watcher = asyncio.create_task(self._watch_cancel(task.task_id, run, canceled))
        try:
            with deadlines.deadline(max(0.0, left)):
                await asyncio.wait_for(run, timeout=max(0.001, left))
            await sink.settled()
        except TimeoutError:
            await self._flush_before_failure(sink)
            await self._fail(task, deadline_failure(deadline_s), attempt, release)
            return
        except TaskTerminal:
            sink.waiting()
            await self._tasks.ack(task.task_id, self.worker_id)  # canceled while running
            return
        except asyncio.CancelledError:
            sink.waiting()
            if not canceled.is_set():
                raise  # the worker itself is stopping
            await self._tasks.ack(task.task_id, self.worker_id)  # stopped by a cancel request
            return
        except HivemeshError as exc:
            await self._flush_before_failure(sink)
            await self._failed_attempt(claim, task, exc, attempt=attempt, release=release)
            return
        except BaseException:
            sink.waiting()
            raise
        finally:
            watcher.cancel()
        try:
            await self._tasks.finish_run(task.task_id, self.worker_id, sink.closing, earlier=sink.waiting())
        except TaskTerminal:
            return  # canceled just before the end: acknowledged without the completion
        if sink.closing is not None:
            self._record_end(task, TaskState.TASK_STATE_COMPLETED, release)

    @staticmethod
    async def _flush_before_failure(sink: LogSink) -> None:
        """Record what the failed run did before its failure is; the failure is recorded even when
        this cannot be (the events are then lost, as they would be in a crash, and unseen)."""
        try:
            await sink.flush()
        except Exception as exc:
            _log.warning("the events of a failed run were not recorded (%s)", exc)
        finally:
            sink.waiting()

    async def _watch_cancel(self, task_id: str, run: asyncio.Task[Outcome], canceled: asyncio.Event) -> None:
        """Cancel the in-flight run (and so its outbound calls) once the task is canceled."""
        poll_s = POLL_INTERVAL_S * 5
        while not run.done():
            # Woken by a cancel; the timeout only covers a wake-up that never arrives (a cancel
            # written by another process with no shared wake-ups), backing off to once a second.
            await self._tasks.wait_for_end(task_id, poll_s)
            poll_s = min(1.0, poll_s * 2)
            current = await self._tasks.get(task_id)
            if current is not None and current.state == TaskState.TASK_STATE_CANCELED:
                canceled.set()
                run.cancel()
                return

    async def _failed_attempt(
        self,
        claim: Claim,
        task: Task | None,
        exc: HivemeshError,
        *,
        attempt: int = 0,
        release: Release | None = None,
    ) -> None:
        """Retry a retryable failure with backoff while attempts remain; then record FAILED and,
        if it was retryable, move the task to the dead-letter queue (in that order, so a crash in
        between is finished by the next claim; see ``_handle_claim``). ``attempt`` numbers the
        events when the failure ended a run (0: no run had started)."""
        task_id = claim.task_id
        genai.failed(trace.get_current_span(), exc)
        if exc.retryable and claim.delivery_count < self._queue.max_attempts:
            delay = backoff(claim.delivery_count)
            notice = TaskEvent(attempt=attempt)
            notice.notice.code = "RETRYING"
            notice.notice.message = (
                f"attempt {claim.delivery_count} failed ({exc.message}); retrying in {delay:.1f}s"
            )
            with contextlib.suppress(TaskTerminal):
                await self._tasks.record(task_id, notice)
            await self._tasks.retry(task_id, self.worker_id, delay, exc.message)
            return
        failed = failure_of(exc)
        failed.attempt = attempt
        try:
            await self._tasks.record(task_id, failed)
        except TaskTerminal:
            await self._tasks.ack(task_id, self.worker_id)
            return
        self._record_end(task or await self._tasks.get(task_id), TaskState.TASK_STATE_FAILED, release)
        if exc.retryable:
            await self._tasks.dead_letter(task_id, self.worker_id, f"{exc.reason}: {exc.message}")
        else:
            await self._tasks.ack(task_id, self.worker_id)

    async def _fail(self, task: Task, exc: HivemeshError, attempt: int, release: Release | None) -> None:
        genai.failed(trace.get_current_span(), exc)
        failed = failure_of(exc)
        failed.attempt = attempt
        with contextlib.suppress(TaskTerminal):
            await self._tasks.record(task.task_id, failed)
            self._record_end(task, TaskState.TASK_STATE_FAILED, release)
        await self._tasks.ack(task.task_id, self.worker_id)

    def _record_end(self, task: Task | None, state: TaskState.ValueType, release: Release | None) -> None:
        label = state_label(state)
        trace.get_current_span().set_attribute(genai.TASK_STATE, label)
        self._metrics.count_task_end(state, release)
        if task is None:
            return
        self._metrics.task_duration.labels(label, self._metrics.release).observe(
            max(0.0, time.time() - task.create_time.ToNanoseconds() / 1e9)
        )


def _last_error(task: Task) -> str:
    return f"{task.error.reason}: {task.error.message}"
