"""Runs one task, by one of two strategies behind the planner's ``Strategy`` port: the built-in
(context -> understand -> plan -> steps -> generate -> remember the turns) or the llm function-calling
loop.

Every step is recorded as events before anyone hears of it. A step already completed in an earlier
attempt (its result is in the log) is not run again, and every tool call carries the idempotency key
``<task id>:<step>``, so a reclaimed task never repeats a side effect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from google.protobuf import json_format, struct_pb2
from opentelemetry import trace

from hivemesh.common.v1.content_pb2 import Role
from hivemesh.common.v1.task_pb2 import Task, TaskEvent
from hivemesh.language.v1 import language_service_pb2 as lang
from hivemesh.memory.v1.memory_service_pb2 import Turn
from hivemesh.mesh import genai, replies, telemetry
from hivemesh.mesh.errors import DeadlineExceeded, FailedPrecondition, HivemeshError
from hivemesh.mesh.intents import Intent
from hivemesh.planner import strategy
from hivemesh.planner.capabilities import Capabilities, CapabilityCache, phrase
from hivemesh.planner.ports import EventSink, Language, Memory, Outcome, Tools
from hivemesh.tasks.projection import error as task_error
from hivemesh.tool.v1.tool_service_pb2 import ToolSpec
from hivemesh.world.zones import server_zone

_log = logging.getLogger(__name__)

# A recall answers from memories at least this similar.
RECALL_MIN_SCORE = 0.2
# The version of what the llm strategy sends the model (the messages it builds, the tool specs it
# offers): part of the planner's release, so change it whenever they change.
LLM_PROMPT_VERSION = "1"


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    json_format.ParseDict(dict(values), result)
    return result


def completed_steps(history: Sequence[TaskEvent]) -> dict[int, TaskEvent]:
    """Successful tool results already in the log, by step (from an earlier attempt)."""
    done: dict[int, TaskEvent] = {}
    for event in history:
        if event.WhichOneof("kind") == "tool_result" and not event.tool_result.HasField("error"):
            done[event.tool_result.step] = event
    return done


def follow_up_text(task: Task, history: Sequence[TaskEvent], tables: Capabilities | None = None) -> str:
    """The request to run: the original text, extended by the user's answers to questions, each
    joined as the asking tool declares ("convert 5 miles" + "km" -> "convert 5 miles to km")."""
    text = task.input_text
    intent, missing = Intent(""), ""
    for event in history:
        kind = event.WhichOneof("kind")
        if kind == "intent_recognized":
            intent = Intent(event.intent_recognized.intent)
        elif kind == "input_requested":
            missing = event.input_requested.missing
        elif kind == "input_received":
            joiner = tables.joiner(intent, missing) if tables is not None else ""
            joiner = f" {joiner} " if joiner else " "
            text = f"{text.rstrip(' ?.!')}{joiner}{event.input_received.text}"
    return text


def in_time_zone(task: Task, zone: str) -> Task:
    """``task`` with its scope naming ``zone`` (a copy when it named another)."""
    if task.scope.time_zone == zone:
        return task
    placed = Task()
    placed.CopyFrom(task)
    placed.scope.time_zone = zone
    return placed


# The tokens of the current run's model calls (input, output): they end up as the
# ``gen_ai.usage.*`` attributes of the run's span. Set at the start of each run, so runs that share a
# runner (and each other's tasks) count apart.
_RUN_TOKENS: ContextVar[list[int] | None] = ContextVar("hivemesh_run_tokens", default=None)


class _Run:
    """What both strategies do the same way: read the context and the catalogue, run a step (or
    reuse its recorded result), save the turns and record it all as events."""

    def __init__(self, language: Language, memory: Memory, tools: Tools) -> None:
        self._language = language
        self._memory = memory
        self._tools = tools

    @staticmethod
    def _start_counting() -> None:
        _RUN_TOKENS.set([0, 0])

    @staticmethod
    def _count(piece: lang.GenerateResponse) -> None:
        tokens = _RUN_TOKENS.get()
        if tokens is None:
            return
        tokens[0] += piece.usage.prompt_tokens
        tokens[1] += piece.usage.completion_tokens
        genai.usage(trace.get_current_span(), tokens[0], tokens[1])

    async def _notice(self, sink: EventSink, code: str, message: str) -> None:
        event = TaskEvent()
        event.notice.code = code
        event.notice.message = message
        await sink.emit(event)

    async def _context(self, task: Task, sink: EventSink) -> tuple[list[Turn], Task]:
        """The conversation so far, and ``task`` with its scope naming the user's time zone (the one
        memory remembers, else the request's, else the server's): from here on the language service
        reads the request in it and every tool call carries it."""
        context: list[Turn] = []
        zone = task.scope.time_zone
        try:
            found = await self._memory.get_context(task.scope)
            context, zone = list(found.turns), found.time_zone or zone
        except HivemeshError as exc:
            await self._notice(
                sink, "MEMORY_UNAVAILABLE", f"running without conversation context: {exc.message}"
            )
        return context, in_time_zone(task, zone or server_zone())

    async def _catalogue(self, sink: EventSink) -> list[ToolSpec]:
        try:
            return await self._tools.list_tools()
        except HivemeshError as exc:
            if exc.retryable:
                raise
            await self._notice(sink, "TOOLS_UNAVAILABLE", exc.message)
            return []

    async def _step(
        self,
        task: Task,
        step: strategy.Step,
        done: Mapping[int, TaskEvent],
        sink: EventSink,
        *,
        call_id: str = "",
    ) -> lang.ChatMessage:
        """Run one step (or reuse its recorded result) and return it as a TOOL message."""
        previous = done.get(step.number)
        if previous is not None:
            return lang.ChatMessage(role=Role.ROLE_TOOL, name=step.tool, content=previous.tool_result.display)
        started = TaskEvent()
        started.step_started.step = step.number
        started.step_started.name = f"tool:{step.tool}"
        await sink.emit(started)
        key = f"{task.task_id}:{step.number}"
        called = TaskEvent()
        called.tool_called.step = step.number
        called.tool_called.tool_name = step.tool
        called.tool_called.arguments.CopyFrom(_struct(step.arguments))
        called.tool_called.idempotency_key = key
        await sink.emit(called)
        result = TaskEvent()
        result.tool_result.step = step.number
        result.tool_result.tool_name = step.tool
        try:
            with telemetry.span(
                f"{genai.EXECUTE_TOOL} {step.tool}",
                attributes={
                    genai.OPERATION_NAME: genai.EXECUTE_TOOL,
                    genai.TOOL_NAME: step.tool,
                    genai.TOOL_CALL_ID: call_id or key,
                    genai.TOOL_TYPE: "function",
                    genai.TASK_ID: task.task_id,
                },
            ) as span:
                try:
                    display, payload = await self._call(task, step, key)
                except HivemeshError as exc:
                    genai.failed(span, exc)
                    raise
        except HivemeshError as exc:
            if exc.retryable and not step.optional:
                raise
            result.tool_result.error.CopyFrom(
                task_error(int(exc.code), exc.reason, exc.message, retryable=exc.retryable)
            )
            await sink.emit(result)
            return lang.ChatMessage(
                role=Role.ROLE_TOOL, name=step.tool, content=replies.step_failed(exc.message)
            )
        display = phrase(step.reply, step.arguments, payload) or display
        result.tool_result.display = display
        result.tool_result.result.CopyFrom(_struct(payload))
        await sink.emit(result)
        return lang.ChatMessage(role=Role.ROLE_TOOL, name=step.tool, content=display)

    async def _call(self, task: Task, step: strategy.Step, key: str) -> tuple[str, dict[str, Any]]:
        response = await self._tools.invoke(
            step.tool, step.arguments, idempotency_key=key, scope=task.scope, task_id=task.task_id
        )
        return response.display, json_format.MessageToDict(response.result)

    async def _stream_answer(
        self, request: lang.GenerateRequest, sink: EventSink, calls: list[lang.ToolCall] | None = None
    ) -> list[str]:
        """Generate the answer, recording each piece of text as an answer delta (and collecting the
        tool calls the model asks for into ``calls``)."""
        chunks: list[str] = []
        async for piece in self._language.generate(request):
            kind = piece.WhichOneof("kind")
            if kind == "text_delta":
                chunks.append(piece.text_delta)
                delta = TaskEvent()
                delta.answer_delta.text = piece.text_delta
                await sink.emit(delta)
            elif kind == "tool_call" and calls is not None:
                calls.append(piece.tool_call)
            elif kind == "usage":
                self._count(piece)
        return chunks

    async def _finish(self, task: Task, text: str, answer: str, sink: EventSink) -> Outcome:
        turns = [
            Turn(role=Role.ROLE_USER, text=text, task_id=task.task_id),
            Turn(role=Role.ROLE_ASSISTANT, text=answer or "(no answer)", task_id=task.task_id),
        ]
        try:
            await self._memory.append_turns(task.scope, turns, request_id=f"{task.task_id}:turns")
        except HivemeshError as exc:
            await self._notice(
                sink, "MEMORY_UNAVAILABLE", f"the conversation turns were not saved: {exc.message}"
            )
        finished = TaskEvent()
        finished.completed.answer = answer
        await sink.emit(finished)
        return Outcome(answer=answer)


class BuiltinRunner(_Run):
    """The built-in strategy: understand, plan from the tools' declarations (strategy.py), run the
    plan's steps concurrently, compose the answer."""

    def __init__(
        self, language: Language, memory: Memory, tools: Tools, *, capabilities: CapabilityCache | None = None
    ) -> None:
        super().__init__(language, memory, tools)
        # Shared by the runs of a process, so the tables are built once per catalogue.
        self._capabilities = capabilities or CapabilityCache()

    async def run(self, task: Task, history: Sequence[TaskEvent], sink: EventSink) -> Outcome:
        self._start_counting()
        context, task = await self._context(task, sink)
        listed = await self._catalogue(sink)
        tables = self._capabilities.tables(listed)
        text = follow_up_text(task, history, tables)
        understanding = await self._language.understand(
            text,
            [t.text for t in context],
            task.scope.time_zone,
            tables.intents,
        )
        recognised = TaskEvent()
        recognised.intent_recognized.intent = understanding.intent
        recognised.intent_recognized.confidence = understanding.confidence
        recognised.intent_recognized.out_of_scope = understanding.out_of_scope
        await sink.emit(recognised)
        plan = strategy.plan(understanding, tables)
        question = plan.question
        if question is not None:
            asked = TaskEvent()
            asked.input_requested.question = question.reply
            asked.input_requested.missing = question.missing
            await sink.emit(asked)
            return Outcome(question=question.reply)
        max_steps = task.options.max_steps or len(plan.steps)
        if len(plan.steps) > max_steps:
            raise FailedPrecondition(
                f"the request needs {len(plan.steps)} steps but the task allows {max_steps}",
                reason="TOO_MANY_STEPS",
                metadata={"steps": str(len(plan.steps)), "max_steps": str(max_steps)},
            )
        done = completed_steps(history)
        results = await asyncio.gather(*(self._step(task, step, done, sink) for step in plan.steps))
        by_step = dict(zip([s.number for s in plan.steps], results, strict=True))
        messages = [lang.ChatMessage(role=Role.ROLE_USER, content=text)]
        messages.extend(by_step[number] for number in sorted(by_step))
        direct = [part.reply for part in plan.parts if part.reply]
        if direct:
            messages.append(lang.ChatMessage(role=Role.ROLE_ASSISTANT, content="\n".join(direct)))
        request = lang.GenerateRequest(
            messages=messages, understanding=understanding, session_id=_session_of(task)
        )
        answer = "".join(await self._stream_answer(request, sink)).strip()
        return await self._finish(task, text, answer, sink)

    async def _call(self, task: Task, step: strategy.Step, key: str) -> tuple[str, dict[str, Any]]:
        if step.tool == strategy.MEMORY_REMEMBER:
            fact = str(step.arguments["text"])
            memory_id = await self._memory.remember(task.scope, fact, request_id=key)
            return replies.remembered(fact), {"memory_id": memory_id}
        if step.tool == strategy.MEMORY_RECALL:
            hits = await self._memory.recall(task.scope, str(step.arguments["query"]), top_k=3)
            relevant = [h for h in hits if h.score >= RECALL_MIN_SCORE]
            if not relevant:
                return replies.RECALL_NOTHING, {"memories": []}
            return relevant[0].memory.text, {"memories": [h.memory.text for h in relevant]}
        return await super()._call(task, step, key)


class LlmRunner(_Run):
    """The llm strategy: a function-calling loop in which the language service's model chooses the
    tools. The memory steps belong to the built-in planner; every call the model makes (even of a
    name it was never offered) goes through ToolService, which validates it."""

    async def run(self, task: Task, history: Sequence[TaskEvent], sink: EventSink) -> Outcome:
        """Let the model call tools until it answers, within max_steps and the task's deadline."""
        self._start_counting()
        context, task = await self._context(task, sink)
        specs = await self._catalogue(sink)
        text = follow_up_text(task, history)
        roles = {Role.ROLE_USER: Role.ROLE_USER, Role.ROLE_ASSISTANT: Role.ROLE_ASSISTANT}
        messages = [lang.ChatMessage(role=roles[t.role], content=t.text) for t in context if t.role in roles]
        messages.append(lang.ChatMessage(role=Role.ROLE_USER, content=text))
        functions = [
            lang.FunctionSpec(name=s.name, description=s.description, parameters=s.arguments_schema)
            for s in specs
        ]
        done = completed_steps(history)
        max_steps = task.options.max_steps or 8
        step_number = 0
        for _round in range(max_steps + 1):
            calls: list[lang.ToolCall] = []
            request = lang.GenerateRequest(messages=messages, tools=functions, session_id=_session_of(task))
            chunks = await self._stream_answer(request, sink, calls)
            if not calls:
                return await self._finish(task, text, "".join(chunks).strip(), sink)
            if step_number + len(calls) > max_steps:
                break
            messages.append(
                lang.ChatMessage(role=Role.ROLE_ASSISTANT, content="".join(chunks), tool_calls=calls)
            )
            steps = []
            for call in calls:
                step_number += 1
                arguments = json_format.MessageToDict(call.arguments)
                steps.append((call, strategy.Step(step_number, call.name, arguments)))
            results = await asyncio.gather(
                *(self._step(task, step, done, sink, call_id=call.id) for call, step in steps)
            )
            for (call, _), result in zip(steps, results, strict=True):
                result.tool_call_id = call.id
                messages.append(result)
        raise FailedPrecondition(
            f"the model asked for more than {max_steps} tool calls",
            reason="TOO_MANY_STEPS",
            metadata={"max_steps": str(max_steps)},
        )


def failure_of(exc: HivemeshError) -> TaskEvent:
    event = TaskEvent()
    event.failed.error.CopyFrom(task_error(int(exc.code), exc.reason, exc.message, retryable=exc.retryable))
    return event


def deadline_failure(seconds: float) -> HivemeshError:
    return DeadlineExceeded(
        f"the task did not finish within its deadline ({seconds:g}s)", reason="TASK_DEADLINE_EXCEEDED"
    )


def _session_of(task: Task) -> str:
    """What keeps a conversation on one model server: its session, else the task (whose model
    calls follow each other within seconds)."""
    return task.scope.session_id or task.task_id
