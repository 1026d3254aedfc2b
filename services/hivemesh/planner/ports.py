"""What the planner needs from the other services, as small ports (adapters in clients.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskEvent
from hivemesh.language.v1.language_service_pb2 import GenerateRequest, GenerateResponse, UnderstandResponse
from hivemesh.memory.v1.memory_service_pb2 import MemoryHit, Turn
from hivemesh.mesh.errors import HivemeshError
from hivemesh.mesh.releases import Pinned, RunRelease
from hivemesh.tool.v1.tool_service_pb2 import InvokeToolResponse, ToolSpec


class Language(Protocol):
    async def understand(
        self,
        text: str,
        context: Sequence[str],
        time_zone: str = "",
        intents: Sequence[str] = (),
    ) -> UnderstandResponse:
        """``intents``: the intents the installed tools serve."""
        ...

    def generate(self, request: GenerateRequest) -> AsyncIterator[GenerateResponse]: ...


@dataclass(frozen=True)
class UserContext:
    """What memory knows of the user for a task: recent turns, and the user's time zone (the
    scope's, else the one their profile remembers; empty when neither names one)."""

    turns: list[Turn]
    time_zone: str = ""


class Memory(Protocol):
    async def get_context(self, scope: Scope) -> UserContext: ...

    async def append_turns(self, scope: Scope, turns: Sequence[Turn], request_id: str) -> None: ...

    async def remember(self, scope: Scope, text: str, request_id: str) -> str: ...

    async def recall(self, scope: Scope, text: str, top_k: int) -> list[MemoryHit]: ...


class Tools(Protocol):
    async def list_tools(self) -> list[ToolSpec]:
        """Every installed tool; asked once per task, so answered from a copy kept fresh."""
        ...

    async def invoke(
        self, name: str, arguments: dict[str, Any], *, idempotency_key: str, scope: Scope, task_id: str
    ) -> InvokeToolResponse: ...


class EventSink(Protocol):
    """Where a run's events go: the task log (queued tasks) or straight to a stream (RunTask)."""

    async def emit(self, event: TaskEvent) -> TaskEvent: ...


class Releases(Protocol):
    """The release a run starts on (planner, language, memory and tool parts) and the side of a
    canary each service's calls go to: ``side`` when the task names one, else the side of the
    release ``pinned`` finds (the session's last run's) while it runs."""

    async def current(self, pinned: Pinned | None = None, *, side: str | None = None) -> RunRelease: ...

    async def own_side(self) -> str | None:
        """The side of the planner's canary whose tasks this process's workers claim (with those
        for any side); None: every task."""
        ...


@dataclass(frozen=True)
class Outcome:
    """How a run ended: an answer, a question for the user, or an error."""

    answer: str = ""
    question: str = ""
    error: HivemeshError | None = None


class Strategy(Protocol):
    """How a task is run (the built-in planner, or the llm loop): what the workers and RunTask call."""

    async def run(self, task: Task, history: Sequence[TaskEvent], sink: EventSink) -> Outcome:
        """Run ``task`` to an answer or a question, resuming after the steps in ``history``; every
        event goes to ``sink`` before anyone is told."""
        ...
