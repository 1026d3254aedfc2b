"""The value types every tool and the executor share: a tool's spec, a call, a result, and the
context a tool runs in. No grpc here: the servicer converts to and from the protobuf messages."""

from __future__ import annotations

import enum
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from hivemesh.tool.ports import RecordStore, ReminderScheduler
from hivemesh.world import zones

_T = TypeVar("_T")

# A JSON value as json.loads returns it (and as a protobuf Struct carries it).
Json = Any
JsonObject = Mapping[str, Json]


class SlotPart(enum.Enum):
    """Which part of a slot's value fills an argument."""

    WHOLE = "whole"  # the value itself (a date as YYYY-MM-DD, a duration in seconds)
    QUANTITY_VALUE = "quantity_value"  # the number of a quantity ("5" of "5 miles")
    QUANTITY_UNIT = "quantity_unit"  # the unit of a quantity ("mile" of "5 miles")


@dataclass(frozen=True)
class Fill:
    """How one argument of a tool is filled when the tool serves an intent.

    ``slot``: the language service's slot that gives the value ("" when the argument is only asked
    for); ``question``: what to ask when the argument is required and the request did not give it;
    ``joiner``: the words that join the user's answer onto the request when it is read again ("to"
    for "convert 5 miles" answered "km").
    """

    slot: str = ""
    question: str = ""
    part: SlotPart = SlotPart.WHOLE
    joiner: str = ""


@dataclass(frozen=True)
class Serves:
    """An intent a tool serves: its arguments by name, and how its result reads (a template over
    the result's fields and the arguments, ``"Tip {tip}, {total} in all"``; "" for the tool's own
    display)."""

    intent: str
    arguments: Mapping[str, Fill] = field(default_factory=dict)
    reply: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "intent": self.intent,
            "arguments": {
                name: {"slot": f.slot, "question": f.question, "part": f.part.value, "joiner": f.joiner}
                for name, f in self.arguments.items()
            },
            "reply": self.reply,
        }


@dataclass(frozen=True)
class ToolSpec:
    """What a caller (a person, the planner, a model) needs to know to call a tool."""

    name: str
    description: str
    arguments_schema: JsonObject
    result_schema: JsonObject
    side_effects: bool = False
    # Longest one call may run; the caller's deadline may cut it shorter.
    timeout_s: float = 10.0
    # Most calls of this tool that run at once (its bulkhead).
    max_concurrency: int = 16
    # "builtin" or "mcp:<server>".
    source: str = "builtin"
    # The intents it serves (see Serves); empty: called by name only.
    intents: tuple[Serves, ...] = ()


@dataclass(frozen=True)
class Owner:
    """Whose data a tool may touch (the request's scope)."""

    tenant_id: str = ""
    user_id: str = ""
    session_id: str = ""


@dataclass(frozen=True)
class ToolOutput:
    """A tool's result: a JSON object matching its result schema and a short human rendering."""

    value: JsonObject
    display: str


@dataclass(frozen=True)
class ToolCall:
    """One request to run a tool."""

    tool_name: str
    arguments: JsonObject
    idempotency_key: str = ""
    owner: Owner = field(default_factory=Owner)
    task_id: str = ""
    # The user's time zone (IANA name) from the request's scope; empty when it names none.
    time_zone: str = ""


@dataclass(frozen=True)
class ToolOutcome:
    """What the caller gets back; ``replayed`` when it came from the idempotency store."""

    output: ToolOutput
    replayed: bool = False


@dataclass(frozen=True)
class Progress:
    """How far a long tool is; ``total`` is zero when unknown."""

    progress: float
    total: float = 0.0
    message: str = ""


ProgressSink = Callable[[Progress], Awaitable[None]]


async def _discard(_: Progress) -> None:
    return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ToolDeps:
    """The outside world as built-in tools see it; tests hand in a fixed clock and a seeded random."""

    records: RecordStore
    scheduler: ReminderScheduler
    clock: Callable[[], datetime] = _utc_now
    random: random.Random = field(default_factory=random.SystemRandom)


@dataclass(frozen=True)
class ToolTarget:
    """A tool a worker process finds by name: the module that defines it and the tool's name."""

    module: str
    tool: str


class Offload(Protocol):
    """Where synchronous tools run, away from the event loop that serves every other call."""

    async def in_thread(self, function: Callable[[], _T]) -> _T:
        """Run ``function`` in a worker thread. Cancelling stops the wait, not the thread."""
        ...

    async def in_process(self, target: ToolTarget, arguments: JsonObject) -> ToolOutput:
        """Run the tool ``target`` on ``arguments`` in a worker process. Cancelling kills the
        process, so a runaway call ends when its timeout fires."""
        ...


@dataclass(frozen=True)
class ToolContext:
    """Handed to a tool that asks for it (a parameter annotated ``ToolContext``)."""

    call: ToolCall
    deps: ToolDeps
    report: ProgressSink = _discard
    # Where synchronous tools run; the executor's worker pool. None (a context built by hand, as
    # tests do): in a thread of the event loop's default executor.
    offload: Offload | None = None

    @property
    def owner(self) -> Owner:
        return self.call.owner

    @property
    def zone(self) -> ZoneInfo:
        """The user's time zone, for the times a tool reads or shows; UTC when the call names none."""
        return zones.zone(self.call.time_zone or zones.UTC_NAME, "scope.time_zone")

    async def progress(self, progress: float, total: float = 0.0, message: str = "") -> None:
        """Report progress; InvokeToolStream forwards it to the caller."""
        await self.report(Progress(progress, total, message))


class Tool(Protocol):
    """Anything the executor can run: a Python function, an MCP server's tool."""

    @property
    def spec(self) -> ToolSpec: ...

    async def run(self, arguments: JsonObject, context: ToolContext) -> ToolOutput: ...


class ToolSource(Protocol):
    """A changing set of tools (an MCP server's), merged into the registry."""

    def tools(self) -> Sequence[Tool]: ...
