"""A turn of a conversation with the agent, as the front doors run it: a task in the caller's
session, or the answer to the question a task of that session asked; its events folded into the
task as they arrive, and the part of its reply that may be streamed already.

The mesh keeps the conversation itself: the planner reads the session's earlier turns from memory
and appends each new one, so a door sends only the newest message, never the transcript again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from hivemesh.client import AnswerJoiner, HivemeshClient
from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskState
from hivemesh.memory.tokens import TURN_OVERHEAD_TOKENS, text_tokens
from hivemesh.tasks.projection import apply

# Tasks waiting for input looked at to find the one a follow-up message answers (newest first).
PENDING_LOOKUP = 20


@dataclass(frozen=True)
class Turn:
    """One message of the user to the agent."""

    text: str
    user_id: str
    session_id: str
    # The task whose question this message answers, when the caller names it (MCP's ask_agent).
    answers_task: str | None = None
    # The agent's reply just before this message, when the caller's transcript has one (OpenAI's
    # messages): if it is the question of a task of this session waiting for input, this message
    # is the answer to it.
    after_reply: str | None = None
    # Idempotency key of a new task (None: a fresh one).
    request_id: str | None = None


@dataclass(frozen=True)
class Usage:
    """Tokens of a turn, estimated as memory counts a turn (hivemesh.memory.tokens: ceil(chars / 4),
    plus 4 per message on the prompt side): the message sent and the reply."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def of(cls, text: str, reply: str) -> Usage:
        return cls(text_tokens(text) + TURN_OVERHEAD_TOKENS, text_tokens(reply))


class Progress:
    """A task as its events arrive: the task folded from them, and the reply text a door may
    stream. Text already streamed cannot be taken back, so only text that stays the start of the
    current attempt's answer is handed out (see ``AnswerJoiner``)."""

    def __init__(self, task: Task | None = None) -> None:
        self.task = Task() if task is None else task
        self._answer = AnswerJoiner()
        self.streamed = ""

    def add(self, event: TaskEvent) -> str:
        """Take the next event; returns the text to stream now ("" when none)."""
        self.task = apply(self.task, event)
        self._answer.add(event)
        current = self._answer.text.lstrip()
        if len(current) > len(self.streamed) and current.startswith(self.streamed):
            piece = current[len(self.streamed) :]
            self.streamed = current
            return piece
        return ""

    @property
    def paused(self) -> bool:
        """Whether the task has a reply: its answer, or a question for the user."""
        return self.task.state in (TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_INPUT_REQUIRED)

    def rest(self) -> str | None:
        """Once the task has a reply, what is left of it to stream after what was streamed; None
        when the streamed text is not the start of the reply (a later attempt answered otherwise)."""
        reply = self.task.answer
        if reply.startswith(self.streamed):
            return reply[len(self.streamed) :]
        kept = self.streamed.rstrip()
        # The answer is the joined text stripped: whitespace streamed at its end is no difference.
        return reply[len(kept) :] if reply.startswith(kept) else None


class Conversation:
    """Runs turns through the gateway for one caller (a client carrying their credentials)."""

    def __init__(self, client: HivemeshClient, *, timeout_s: float, patience_s: float) -> None:
        self._client = client
        self._timeout = timeout_s
        self._patience = patience_s

    async def run(self, turn: Turn) -> tuple[Progress, AsyncIterator[TaskEvent]]:
        """Start ``turn``: answer the question it follows, or submit a new task. Returns the task's
        progress so far and its events from here until it ends or asks a question."""
        waiting = await self._question_answered(turn)
        if waiting is not None:
            task = await self._client.answer(waiting, turn.text)
            events = self._client.follow(
                task.task_id, task.last_sequence, patience_s=self._patience, timeout_s=self._timeout
            )
            return Progress(task), events
        events = self._client.execute(
            turn.text,
            user_id=turn.user_id,
            session_id=turn.session_id,
            request_id=turn.request_id,
            timeout_s=self._timeout,
            patience_s=self._patience,
        )
        return Progress(), events

    async def _question_answered(self, turn: Turn) -> str | None:
        """The id of the task ``turn`` answers the question of, if any."""
        if turn.answers_task is not None:
            return turn.answers_task
        if not turn.after_reply:
            return None
        waiting, _ = await self._client.list(
            page_size=PENDING_LOOKUP, user_id=turn.user_id, states=[TaskState.TASK_STATE_INPUT_REQUIRED]
        )
        for task in waiting:
            if task.scope.session_id == turn.session_id and task.answer.strip() == turn.after_reply.strip():
                return task.task_id
        return None
