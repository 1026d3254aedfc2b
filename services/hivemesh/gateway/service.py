"""The gateway's domain: admit tasks, read them back, cancel them, follow their events.

The caller's tenant comes from ``Caller`` (resolved by authentication at the edge); a task of
another tenant is reported as not found, never as forbidden, so ids leak nothing.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct

from hivemesh.common.v1.release_pb2 import Release
from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskOptions, TaskState
from hivemesh.gateway.config import GatewayConfig
from hivemesh.memory.v1 import memory_service_pb2 as memory
from hivemesh.mesh import telemetry
from hivemesh.mesh.config import Settings
from hivemesh.mesh.credentials import Minter, acting_as
from hivemesh.mesh.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unimplemented,
)
from hivemesh.mesh.sides import NAMED_SIDES
from hivemesh.tasks.log import TaskTerminal, Verification
from hivemesh.tasks.ports import TaskBook
from hivemesh.tasks.projection import is_terminal
from hivemesh.tasks.queue import DeadLetter
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.world import zones

_log = logging.getLogger(__name__)

DEFAULT_TENANT = "default"
# The service whose canary side the gateway chooses for each task (it is not called: it claims).
PLANNER = "planner"
# Lifetime of the credential minted for one direct tool call (a task's lives as long as the task).
TOOL_CALL_CREDENTIAL_TTL_S = 300.0
# A watch of the task list looks again when told that some task changed, after letting a burst of
# events (a task streaming its answer) settle; and at least this often, in case a wake-up was lost.
WATCH_SETTLE_S = 0.2
WATCH_LOOK_S = 5.0
# A direct call's request id becomes the tool's idempotency key under this prefix, apart from the
# keys of tasks' steps (``<task id>:<step>``).
TOOL_CALL_KEY_PREFIX = "call:"


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tenant their credentials belong to (None when authentication is off),
    and whether the credentials may only read (a viewer's API key)."""

    tenant_id: str | None
    read_only: bool = False

    def may_change(self, what: str) -> None:
        """Refuse a read-only caller an RPC that changes something (``what`` says which)."""
        if self.read_only:
            raise PermissionDenied(
                f"a viewer's credentials may only read; {what} needs an operator's",
                reason="READ_ONLY_CREDENTIAL",
                metadata={"action": what},
            )


@dataclass(frozen=True)
class NewTask:
    request_id: str
    text: str
    scope: Scope
    options: TaskOptions


@dataclass(frozen=True)
class ToolRun:
    """One tool called directly, outside any task."""

    request_id: str
    tool_name: str
    arguments: Struct
    scope: Scope


class ToolPort(Protocol):
    """ToolService, as the gateway needs it; calls carry the credential the caller acts with."""

    async def list_tools(self, page_size: int, page_token: str) -> tool.ListToolsResponse: ...

    async def invoke(self, request: tool.InvokeToolRequest) -> tool.InvokeToolResponse: ...


class MemoryPort(Protocol):
    """MemoryService, as the gateway needs it: counts only; calls carry the caller's credential."""

    async def count(self, tenant_id: str, user_id: str) -> memory.MemoryUsage: ...


class Sides(Protocol):
    """Which side of a service's canary a session's next task is for (hivemesh.mesh.releases)."""

    async def session_side(
        self, service: str, pinned: Callable[[], Awaitable[Release | None]], *, named: str | None = None
    ) -> str:
        """``named`` when the task names a side, else the side of the release ``pinned`` finds (the
        session's), else the side a weighted call reaches; '' while no canary runs: any."""
        ...


@dataclass(frozen=True)
class TaskFilter:
    """Which of a tenant's tasks a list or a watch of the list shows (``tenant_id`` empty: the
    caller's; ``page_size`` 0: 50)."""

    user_id: str = ""
    states: Sequence[int] = ()
    created_after: float | None = None
    created_before: float | None = None
    page_size: int = 0
    tenant_id: str = ""


class Gateway:
    def __init__(
        self,
        tasks: TaskBook,
        settings: Settings,
        minter: Minter | None = None,
        tools: ToolPort | None = None,
        memory: MemoryPort | None = None,
        sides: Sides | None = None,
        *,
        queue_max_depth: int = GatewayConfig.queue_max_depth,
    ) -> None:
        self._tasks = tasks
        self._settings = settings
        self._queue_max_depth = queue_max_depth
        # Signs the credential each task's runs act with inside the mesh (none when that is off).
        self._minter = minter
        self._tools = tools
        self._memory = memory
        # Which side of the planner's canary takes a session's tasks (None: any, no sticky sessions).
        self._sides = sides
        # Submits admitted and not yet queued: ``backlog()`` does not count them yet.
        self._admitting = 0

    def _tenant(self, caller: Caller, requested: str, field: str = "scope.tenant_id") -> str:
        if caller.tenant_id is None:
            return requested or DEFAULT_TENANT
        if requested and requested != caller.tenant_id:
            raise PermissionDenied(
                f"{field} does not match the tenant of the credentials",
                reason="TENANT_MISMATCH",
                metadata={"field": field},
            )
        return caller.tenant_id

    def _options(self, given: TaskOptions) -> TaskOptions:
        options = TaskOptions()
        options.CopyFrom(given)
        if options.deadline.seconds == 0 and options.deadline.nanos == 0:
            options.deadline.CopyFrom(
                Duration(
                    seconds=int(self._settings.task_deadline_s),
                    nanos=int(self._settings.task_deadline_s % 1 * 1e9),
                )
            )
        if options.max_steps == 0:
            options.max_steps = self._settings.max_steps
        return options

    async def submit(self, caller: Caller, new: NewTask) -> tuple[Task, bool]:
        caller.may_change("submitting a task")
        for field in ("user_id", "session_id"):
            if not getattr(new.scope, field):
                raise InvalidArgument.field(f"scope.{field}", "is required")
        zones.check(new.scope.time_zone, "scope.time_zone")
        scope = Scope()
        scope.CopyFrom(new.scope)
        scope.tenant_id = self._tenant(caller, new.scope.tenant_id)
        # The check and the reservation happen with nothing awaited in between, so the submits of
        # this process never admit more than the bound between them; several gateway processes
        # see each other's tasks only at their next count (docs/security.md gives the bound).
        depth = await self._tasks.backlog() + self._admitting
        if depth >= self._queue_max_depth:
            raise ResourceExhausted(
                f"the task queue is full ({depth} tasks waiting); try again shortly",
                retry_after_s=1.0,
                reason="QUEUE_FULL",
                metadata={"queue_depth": str(depth)},
            )
        self._admitting += 1
        try:
            task = Task(
                task_id=uuid.uuid4().hex,
                scope=scope,
                request_id=new.request_id,
                input_text=new.text,
                options=self._options(new.options),
            )
            side = await self._planner_side(task)
            # Once queued, the task is in ``backlog()``: the reservation ends with the submit.
            return await self._tasks.submit(
                task, trace=telemetry.inject(), credential=self._credential(task), side=side
            )
        finally:
            self._admitting -= 1

    async def _planner_side(self, task: Task) -> str:
        """The side of the planner's canary whose workers take ``task``: the side it names, else
        its session's (the release its own earlier run or its session's latest task recorded);
        '' (any) without sticky sessions, outside a canary, or when the side cannot be read."""
        if self._sides is None:
            return ""

        async def pinned() -> Release | None:
            if task.release.parts:
                return task.release
            return await self._tasks.session_release(task.scope)

        try:
            return await self._sides.session_side(PLANNER, pinned, named=NAMED_SIDES.get(task.options.side))
        except Exception as exc:
            # A task is never refused for want of a side: any planner takes it.
            _log.warning("the side of the planner could not be chosen (%s); any planner takes the task", exc)
            return ""

    def _credential(self, task: Task) -> str:
        """The mesh credential for the runs of ``task``: its tenant, its user, itself."""
        if self._minter is None:
            return ""
        return self._minter.mint(task.scope.tenant_id, task.scope.user_id, task.task_id)

    async def get(self, caller: Caller, task_id: str) -> Task:
        task = await self._tasks.get(task_id)
        if task is None or (caller.tenant_id is not None and task.scope.tenant_id != caller.tenant_id):
            raise NotFound(
                f"task {task_id} not found", reason="TASK_NOT_FOUND", metadata={"task_id": task_id}
            )
        return task

    async def list(
        self, caller: Caller, which: TaskFilter, page_token: str = ""
    ) -> tuple[builtins.list[Task], str]:
        """A page of the tenant's tasks that ``which`` selects, newest first, and the next page's
        token (empty: the last page)."""
        tenant = self._tenant(caller, which.tenant_id, "tenant_id")
        return await self._tasks.list_tasks(
            tenant,
            user_id=which.user_id,
            states=which.states,
            created_after=which.created_after,
            created_before=which.created_before,
            page_size=which.page_size or 50,
            page_token=page_token,
        )

    async def watch_tasks(self, caller: Caller, which: TaskFilter) -> AsyncIterator[builtins.list[Task]]:
        """The newest page of the tenant's tasks, at once and then whenever it changes. The task
        system says when some task may have changed (of any tenant: a hint); the page is then read
        again and handed on only if it differs."""
        shown: builtins.list[bytes] | None = None
        while True:
            tasks, _ = await self.list(caller, which)
            seen = [t.SerializeToString(deterministic=True) for t in tasks]
            if seen != shown:
                shown = seen
                yield tasks
            await self._tasks.wait_for_change(WATCH_LOOK_S)
            await asyncio.sleep(WATCH_SETTLE_S)

    async def cancel(self, caller: Caller, task_id: str, reason: str) -> Task:
        caller.may_change("canceling a task")
        task = await self.get(caller, task_id)
        if is_terminal(task.state):
            return task
        # A queued task leaves the queue; a running one is stopped by its worker, woken by the
        # cancellation, which cancels its in-flight calls.
        try:
            return await self._tasks.cancel(task_id, reason or "canceled by the caller")
        except TaskTerminal:
            return await self.get(caller, task_id)

    async def watch(self, caller: Caller, task_id: str, after_sequence: int) -> AsyncIterator[TaskEvent]:
        task = await self.get(caller, task_id)
        if after_sequence > task.last_sequence and is_terminal(task.state):
            raise InvalidArgument.field("after_sequence", f"is beyond the last event ({task.last_sequence})")
        async for event in self._tasks.follow(task_id, after_sequence):
            yield event

    def follow_submitted(self, task: Task) -> AsyncIterator[TaskEvent]:
        """The events of a task ``submit`` has just returned to this caller (its tenant already
        checked there), from the first."""
        return self._tasks.follow(task.task_id, 0)

    async def continue_task(self, caller: Caller, task_id: str, request_id: str, text: str) -> Task:
        caller.may_change("answering a task")
        task = await self.get(caller, task_id)
        if task.state != TaskState.TASK_STATE_INPUT_REQUIRED:
            raise FailedPrecondition(
                f"task {task_id} is not waiting for input (it is {TaskState.Name(task.state)})",
                reason="TASK_NOT_WAITING_FOR_INPUT",
                metadata={"task_id": task_id, "state": TaskState.Name(task.state)},
            )
        try:
            return await self._tasks.answer(
                task_id, text, credential=self._credential(task), side=await self._planner_side(task)
            )
        except TaskTerminal:
            return await self.get(caller, task_id)

    # ---- tools, called directly ----------------------------------------------------------------

    def _tool_port(self) -> ToolPort:
        if self._tools is None:
            raise Unimplemented("this gateway is not connected to the tool service", reason="NO_TOOL_SERVICE")
        return self._tools

    def _call_credential(self, tenant_id: str, user_id: str) -> str:
        """A short-lived mesh credential for one call of the caller (none when that is off)."""
        if self._minter is None:
            return ""
        return self._minter.mint(tenant_id, user_id, ttl_s=TOOL_CALL_CREDENTIAL_TTL_S)

    async def list_tools(
        self, caller: Caller, *, page_size: int, page_token: str
    ) -> tuple[builtins.list[tool.ToolSpec], str]:
        """A page of the tool catalogue, read with a credential of the caller's tenant."""
        tools = self._tool_port()
        with acting_as(self._call_credential(self._tenant(caller, ""), "")):
            page = await tools.list_tools(page_size, page_token)
        return builtins.list(page.tools), page.next_page_token

    async def memory_usage(
        self, caller: Caller, tenant_id: str, user_id: str
    ) -> tuple[str, memory.MemoryUsage]:
        """The counts of a tenant's memory, layer by layer (the caller's own tenant when
        authenticated), read with a credential of that tenant and no user, so one user's or the
        whole tenant's may be counted. Counts only: no content leaves memory this way."""
        if self._memory is None:
            raise Unimplemented(
                "this gateway is not connected to the memory service", reason="NO_MEMORY_SERVICE"
            )
        tenant = self._tenant(caller, tenant_id, "tenant_id")
        with acting_as(self._call_credential(tenant, "")):
            return tenant, await self._memory.count(tenant, user_id)

    async def invoke_tool(self, caller: Caller, run: ToolRun) -> tool.InvokeToolResponse:
        """Run one tool through ToolService as the caller's tenant and the scope's user; the request
        id is the call's idempotency key, so a repeat returns the first result."""
        caller.may_change("running a tool")
        if not run.scope.user_id:
            raise InvalidArgument.field("scope.user_id", "is required")
        tools = self._tool_port()
        scope = Scope(
            tenant_id=self._tenant(caller, run.scope.tenant_id),
            user_id=run.scope.user_id,
            session_id=run.scope.session_id,
            time_zone=run.scope.time_zone,
        )
        request = tool.InvokeToolRequest(
            tool_name=run.tool_name,
            arguments=run.arguments,
            idempotency_key=TOOL_CALL_KEY_PREFIX + run.request_id,
            scope=scope,
        )
        with acting_as(self._call_credential(scope.tenant_id, scope.user_id)):
            return await tools.invoke(request)

    # ---- dead letters ----------------------------------------------------------------------------

    async def dead_letters(
        self, caller: Caller, *, page_size: int, page_token: str
    ) -> tuple[builtins.list[DeadTask], str]:
        """The caller's dead letters, oldest first (every tenant's when authentication is off)."""
        size = page_size or 50
        after = _decode_cursor(page_token) if page_token else None
        letters = await self._tasks.dead_letters(tenant_id=caller.tenant_id, limit=size + 1, after=after)
        page = letters[:size]
        found = []
        for letter in page:
            task = await self._tasks.get(letter.task_id)
            if task is not None:
                found.append(DeadTask(task, letter))
        token = _encode_cursor(page[-1].enqueued_at, page[-1].task_id) if len(letters) > size else ""
        return found, token

    async def verify(self, caller: Caller, task_id: str) -> Verification:
        """Check the hash chain of one of the caller's tasks."""
        await self.get(caller, task_id)
        return await self._tasks.verify(task_id)

    async def dead_letter(self, caller: Caller, task_id: str) -> DeadTask:
        task = await self.get(caller, task_id)
        letter = await self._tasks.dead_letter_of(task_id)
        if letter is None:
            raise NotFound(
                f"task {task_id} is not in the dead-letter queue",
                reason="DEAD_LETTER_NOT_FOUND",
                metadata={"task_id": task_id},
            )
        return DeadTask(task, letter)

    async def replay(self, caller: Caller, task_id: str) -> Task:
        """Return a dead letter to the queue, its history kept: the log gets a state change back to
        SUBMITTED (allowed after the FAILED end), then the queue entry is revived. Repeating a
        replay that stopped half-way finishes it; repeating a finished one changes nothing."""
        caller.may_change("replaying a dead letter")
        task = await self.get(caller, task_id)
        return await self._tasks.replay(task_id, credential=self._credential(task)) or task

    async def purge(self, caller: Caller, task_id: str | None) -> int:
        caller.may_change("purging dead letters")
        if task_id is not None:
            await self.get(caller, task_id)
        return await self._tasks.purge(task_id, tenant_id=caller.tenant_id)


@dataclass(frozen=True)
class DeadTask:
    """A dead-lettered task with what the queue knows of it."""

    task: Task
    letter: DeadLetter


def _encode_cursor(enqueued_at: float, task_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([enqueued_at, task_id]).encode()).decode()


def _decode_cursor(token: str) -> tuple[float, str]:
    try:
        enqueued_at, task_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return float(enqueued_at), str(task_id)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument.field("page_token", "is not a token from a previous response") from exc
