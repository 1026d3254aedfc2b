"""Runs tool calls with the guarantees callers rely on: arguments checked against the schema, the
caller's deadline and the tool's own timeout both enforced, a per-tool concurrency limit, at most
one run per idempotency key, and every failure of the tool turned into a clear error of its call.

A side-effecting call that carries an idempotency key is not abandoned when its caller goes away:
cancelling it halfway could leave the effect done but its outcome unrecorded, and the caller's
retry would then do it again. It runs on (within its timeout), its outcome is stored, and the retry
gets that outcome back. Every other call is cancelled with its caller.

Synchronous tools never run on the event loop (see ``pool``): a computation there would hold up
every other call and its own timeout. They run in the executor's worker threads, or, when
declared ``cpu_bound``, in its worker processes, which a timeout stops by killing."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from hivemesh.mesh import deadlines
from hivemesh.mesh.bulkhead import RefusingBulkhead
from hivemesh.mesh.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    HivemeshError,
    InvalidArgument,
    ResourceExhausted,
)
from hivemesh.mesh.metrics import Metrics
from hivemesh.tool import arguments
from hivemesh.tool.decorator import FunctionTool
from hivemesh.tool.idempotency import (
    Claimed,
    Finished,
    IdempotencyStore,
    Running,
    check_same_call,
    fingerprint,
    store_key,
)
from hivemesh.tool.model import (
    Progress,
    ProgressSink,
    Tool,
    ToolCall,
    ToolContext,
    ToolDeps,
    ToolOutcome,
    ToolOutput,
)
from hivemesh.tool.pool import PoolSize, WorkerPool
from hivemesh.tool.registry import Registry
from hivemesh.tool.worker import ToolRaised

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecutionPolicy:
    # How long a stored outcome answers repeats of its key.
    idempotency_ttl_s: float = 24 * 3600.0
    # Added to a tool's timeout for the lease on its key, so a live call never loses its claim.
    lease_margin_s: float = 30.0
    # Suggested wait (RetryInfo) when a tool's bulkhead is full.
    busy_retry_after_s: float = 0.5
    # Longest pause between two looks at a key another replica is running.
    max_poll_s: float = 0.25
    # The worker threads and processes that run synchronous tools.
    workers: PoolSize = field(default_factory=PoolSize)


async def _discard(_: Progress) -> None:
    return None


class Executor:
    def __init__(
        self,
        registry: Registry,
        deps: ToolDeps,
        store: IdempotencyStore,
        policy: ExecutionPolicy | None = None,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._registry = registry
        self._metrics = metrics
        self._deps = deps
        self._store = store
        self._policy = policy or ExecutionPolicy()
        self._bulkheads: dict[str, RefusingBulkhead] = {}
        # Keys running in this process, so local waiters wake at once instead of polling.
        self._running: dict[str, asyncio.Event] = {}
        # Side-effecting keyed calls, kept running when their callers go away.
        self._detached: set[asyncio.Task[ToolOutput]] = set()
        # Each new worker process imports the modules of the cpu_bound tools before its first call.
        preload = {
            t.target.module for t in registry.all().values() if isinstance(t, FunctionTool) and t.cpu_bound
        }
        self._workers = WorkerPool(self._policy.workers, preload=sorted(preload))

    async def invoke(self, call: ToolCall, report: ProgressSink = _discard) -> ToolOutcome:
        """Run ``call``; with metrics, count it by tool and outcome and time it (a call of a tool
        that does not exist is not counted: its name is the caller's, of unbounded variety)."""
        item = self._registry.get(call.tool_name)
        if self._metrics is None:
            return await self._invoke(item, call, report)
        started, outcome = time.perf_counter(), "CANCELLED"
        try:
            result = await self._invoke(item, call, report)
            outcome = "OK"
            return result
        except HivemeshError as exc:
            outcome = exc.code.name
            raise
        except Exception:
            outcome = "INTERNAL"
            raise
        finally:
            self._metrics.count_tool_call(item.spec.name, outcome, time.perf_counter() - started)

    async def _invoke(self, item: Tool, call: ToolCall, report: ProgressSink) -> ToolOutcome:
        try:
            arguments.check(item.spec.name, self._registry.validator(item), call.arguments)
            if not call.idempotency_key:
                return ToolOutcome(await self._run(item, call, report))
            return await self._once(item, call, report)
        except InvalidArgument as refused:
            # The caller's mistake, not the service's: one line, no traceback.
            _log.info("%s refused its arguments: %s (%s)", item.spec.name, refused.message, refused.reason)
            raise

    async def _once(self, item: Tool, call: ToolCall, report: ProgressSink) -> ToolOutcome:
        key, expected = store_key(call), fingerprint(call)
        lease = item.spec.timeout_s + self._policy.lease_margin_s
        pause = 0.01
        while True:
            claim = await self._store.claim(key, expected, lease)
            if isinstance(claim, Finished):
                check_same_call(call, expected, claim.fingerprint)
                return ToolOutcome(claim.output, replayed=True)
            if isinstance(claim, Claimed):
                break
            assert isinstance(claim, Running)
            check_same_call(call, expected, claim.fingerprint)
            await self._wait(key, pause)
            pause = min(pause * 2, self._policy.max_poll_s)
        return ToolOutcome(await self._run_claimed(item, call, report, key, claim))

    async def _run_claimed(
        self, item: Tool, call: ToolCall, report: ProgressSink, key: str, claim: Claimed
    ) -> ToolOutput:
        if not item.spec.side_effects:
            return await self._settle(item, call, report, key, claim)
        run = asyncio.create_task(self._settle(item, call, report, key, claim))
        self._detached.add(run)
        run.add_done_callback(self._settled)
        try:
            return await asyncio.shield(run)
        except asyncio.CancelledError:
            if not run.done():
                _log.info(
                    "the caller of %s left; the call runs on so that its outcome is stored",
                    item.spec.name,
                )
            raise

    def _settled(self, run: asyncio.Task[ToolOutput]) -> None:
        self._detached.discard(run)
        # A caller that left never reads the outcome; failures are already logged and released.
        if not run.cancelled():
            run.exception()

    async def start(self) -> None:
        await self._workers.start()

    async def stop(self, grace_s: float) -> None:
        """Give side-effecting calls whose callers left ``grace_s`` to finish, then cancel them
        (which frees their keys); then stop the worker threads and processes."""
        await self._stop_detached(grace_s)
        await self._workers.stop(grace_s)

    async def _stop_detached(self, grace_s: float) -> None:
        if not self._detached:
            return
        running = set(self._detached)
        _, late = await asyncio.wait(running, timeout=grace_s)
        for run in late:
            run.cancel()
        if late:
            _log.warning("cancelled %d tool calls still running at shutdown", len(late))
            await asyncio.wait(late)

    async def _settle(
        self, item: Tool, call: ToolCall, report: ProgressSink, key: str, claim: Claimed
    ) -> ToolOutput:
        done = self._running[key] = asyncio.Event()
        try:
            output = await self._run(item, call, report)
        except BaseException:
            # Shielded: a cancelled call must still let the next caller run the tool.
            await asyncio.shield(self._store.release(key, claim.token))
            raise
        else:
            await asyncio.shield(self._store.finish(key, claim.token, output, self._policy.idempotency_ttl_s))
            return output
        finally:
            done.set()
            self._running.pop(key, None)

    async def _wait(self, key: str, pause: float) -> None:
        left = deadlines.remaining()
        if left is not None and left <= 0:
            raise DeadlineExceeded(
                "a call with the same idempotency key is still running",
                reason="IDEMPOTENT_CALL_IN_PROGRESS",
            )
        timeout = pause if left is None else min(pause, left)
        local = self._running.get(key)
        if local is None:
            await asyncio.sleep(timeout)
            return
        try:
            await asyncio.wait_for(local.wait(), timeout=max(timeout, self._policy.max_poll_s))
        except TimeoutError:
            return

    async def _run(self, item: Tool, call: ToolCall, report: ProgressSink) -> ToolOutput:
        spec = item.spec
        bulkhead = self._bulkheads.get(spec.name)
        if bulkhead is None or bulkhead.limit != spec.max_concurrency:
            bulkhead = self._bulkheads[spec.name] = RefusingBulkhead(spec.max_concurrency)
        if not bulkhead.try_enter():
            raise ResourceExhausted(
                f"{spec.name} is already running its maximum of {spec.max_concurrency} calls",
                retry_after_s=self._policy.busy_retry_after_s,
                reason="TOOL_BUSY",
                metadata={"tool": spec.name, "max_concurrency": str(spec.max_concurrency)},
            )
        try:
            return await self._bounded(item, call, report)
        finally:
            bulkhead.leave()

    async def _bounded(self, item: Tool, call: ToolCall, report: ProgressSink) -> ToolOutput:
        spec = item.spec
        left = deadlines.remaining()
        caller_bound = left is not None and left < spec.timeout_s
        timeout = spec.timeout_s if left is None else min(spec.timeout_s, left)
        try:
            async with asyncio.timeout(timeout) as scope:
                output = await item.run(call.arguments, ToolContext(call, self._deps, report, self._workers))
        except TimeoutError:
            if not scope.expired():
                raise self._failed(spec.name, TimeoutError("the tool timed out")) from None
            if caller_bound:
                raise DeadlineExceeded(
                    f"{spec.name} did not finish before the caller's deadline",
                    reason="DEADLINE_EXCEEDED",
                    metadata={"tool": spec.name},
                ) from None
            raise DeadlineExceeded(
                f"{spec.name} did not finish within its {spec.timeout_s:g}s timeout",
                reason="TOOL_TIMEOUT",
                metadata={"tool": spec.name, "timeout_s": f"{spec.timeout_s:g}"},
            ) from None
        except HivemeshError:
            raise
        except Exception as exc:
            raise self._failed(spec.name, exc) from exc
        if not isinstance(output, ToolOutput):
            raise self._failed(spec.name, TypeError(f"returned {type(output).__name__}, not ToolOutput"))
        return output

    @staticmethod
    def _failed(name: str, exc: BaseException) -> FailedPrecondition:
        kind = type(exc).__name__
        if isinstance(exc, ToolRaised):
            # Raised in a worker process: its own traceback says where.
            kind = exc.type_name
            _log.warning("tool %s failed in a worker process:\n%s", name, exc.remote_traceback.rstrip())
        else:
            _log.warning("tool %s failed", name, exc_info=exc)
        return FailedPrecondition(
            f"{name} failed: {kind}: {exc}",
            reason="TOOL_FAILED",
            metadata={"tool": name, "error": kind},
        )
