"""The planner's request/response side: plan a request, or run it directly without the queue."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskOptions
from hivemesh.mesh.errors import HivemeshError, InvalidArgument
from hivemesh.planner import strategy
from hivemesh.planner.capabilities import CapabilityCache
from hivemesh.planner.ports import Language, Strategy, Tools
from hivemesh.planner.runner import failure_of
from hivemesh.planner.v1 import planner_service_pb2 as pb
from hivemesh.world import zones


class StreamSink:
    """Numbers a direct run's events and hands them to the caller's stream. A direct run is never
    taken over, so all its events are of attempt 1."""

    def __init__(self, task_id: str) -> None:
        self._task_id = task_id
        self._sequence = 0
        self.events: asyncio.Queue[TaskEvent | None] = asyncio.Queue()

    async def emit(self, event: TaskEvent) -> TaskEvent:
        self._sequence += 1
        stored = TaskEvent()
        stored.CopyFrom(event)
        stored.task_id = self._task_id
        stored.sequence = self._sequence
        stored.attempt = 1
        stored.time.GetCurrentTime()
        await self.events.put(stored)
        return stored


def _require_user(scope: Scope) -> Scope:
    for field in ("user_id", "session_id"):
        if not getattr(scope, field):
            raise InvalidArgument.field(f"scope.{field}", "is required")
    result = Scope()
    result.CopyFrom(scope)
    result.tenant_id = scope.tenant_id or "default"
    return result


class Planner:
    def __init__(
        self, language: Language, tools: Tools, runner: Strategy, capabilities: CapabilityCache | None = None
    ) -> None:
        self._language = language
        self._tools = tools
        self._runner = runner
        self._capabilities = capabilities or CapabilityCache()

    async def plan(self, text: str, scope: Scope) -> pb.Plan:
        _require_user(scope)
        zones.check(scope.time_zone, "scope.time_zone")
        listed = await self._tools.list_tools()
        tables = self._capabilities.tables(listed)
        understanding = await self._language.understand(text, [], scope.time_zone, tables.intents)
        planned = strategy.plan(understanding, tables)
        result = pb.Plan(
            intent=understanding.intent,
            confidence=understanding.confidence,
            out_of_scope=understanding.out_of_scope,
        )
        for step in planned.steps:
            proto_step = result.steps.add(step=step.number, tool_name=step.tool, optional=step.optional)
            json_format.ParseDict(step.arguments, proto_step.arguments)
            proto_step.depends_on.extend(step.depends_on)
        result.direct_reply = "\n".join(p.reply for p in planned.parts if p.reply)
        question = planned.question
        if question is not None:
            result.missing_argument = question.missing
        return result

    async def run(
        self, text: str, scope: Scope, options: TaskOptions, task_id: str
    ) -> AsyncIterator[TaskEvent]:
        task = Task(
            task_id=task_id or uuid.uuid4().hex,
            scope=_require_user(scope),
            input_text=text,
            options=options,
        )
        now = Timestamp()
        now.FromNanoseconds(time.time_ns())
        task.create_time.CopyFrom(now)
        sink = StreamSink(task.task_id)

        async def drive() -> None:
            try:
                await self._runner.run(task, [], sink)
            except HivemeshError as exc:
                await sink.emit(failure_of(exc))
            finally:
                await sink.events.put(None)

        job = asyncio.create_task(drive())
        try:
            while (event := await sink.events.get()) is not None:
                yield event
        finally:
            job.cancel()
