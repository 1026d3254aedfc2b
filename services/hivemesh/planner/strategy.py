"""The built-in planning strategy: from an understood request to tool steps.

Intent and slots choose the tool and its arguments as the tool declares (see capabilities.py), checked
against the tool's required arguments before any call; compound requests become several independent
steps; a missing required argument becomes the tool's question; out of scope and "no such tool
installed" become honest direct replies from the reply catalogue.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hivemesh.language.v1.language_service_pb2 import Slot, UnderstandResponse
from hivemesh.mesh import replies
from hivemesh.mesh.intents import AgentIntent, Intent
from hivemesh.planner.capabilities import Capabilities
from hivemesh.tool.v1.tool_service_pb2 import ToolSpec

MEMORY_REMEMBER = "memory.remember"
MEMORY_RECALL = "memory.recall"

OUT_OF_SCOPE_REPLY = replies.OUT_OF_SCOPE
GREETING_REPLY = replies.GREETING


def slot_values(slots: Sequence[Slot]) -> dict[str, Any]:
    """Slots as plain Python values keyed by name (the first slot of a name wins)."""
    values: dict[str, Any] = {}
    for slot in slots:
        if slot.name in values:
            continue
        kind = slot.WhichOneof("value")
        if kind == "number":
            values[slot.name] = slot.number
        elif kind == "quantity":
            values[slot.name] = (slot.quantity.value, slot.quantity.unit)
        elif kind == "date":
            values[slot.name] = dt.date(slot.date.year, slot.date.month, slot.date.day)
        elif kind == "date_time":
            values[slot.name] = slot.date_time.ToDatetime(tzinfo=dt.UTC)
        elif kind == "duration":
            values[slot.name] = slot.duration.ToTimedelta()
        elif kind == "items":
            values[slot.name] = list(slot.items.values)
        elif kind is not None:
            values[slot.name] = getattr(slot, kind)
    return values


@dataclass(frozen=True)
class Step:
    """One call: a tool (or a memory operation) with its arguments."""

    number: int
    tool: str
    arguments: dict[str, Any]
    depends_on: tuple[int, ...] = ()
    optional: bool = False
    # How the result reads (the declaration's template); "" for the tool's own display.
    reply: str = ""


@dataclass(frozen=True)
class PlannedPart:
    """The plan for one part of a request: steps, or a direct reply, or a question."""

    intent: Intent
    confidence: float
    out_of_scope: bool
    steps: tuple[Step, ...] = ()
    reply: str = ""
    missing: str = ""


@dataclass(frozen=True)
class Plan:
    parts: tuple[PlannedPart, ...] = field(default_factory=tuple)

    @property
    def steps(self) -> list[Step]:
        return [step for part in self.parts for step in part.steps]

    @property
    def question(self) -> PlannedPart | None:
        return next((p for p in self.parts if p.missing), None)


def plan_part(understanding: UnderstandResponse, tables: Capabilities, first_step: int) -> PlannedPart:
    intent = Intent(understanding.intent)
    base = PlannedPart(intent, understanding.confidence, understanding.out_of_scope)
    text = understanding.text
    own = AgentIntent.of(intent)
    if understanding.out_of_scope or own is AgentIntent.OUT_OF_SCOPE or not intent:
        return replace(base, reply=replies.OUT_OF_SCOPE)
    if own is AgentIntent.GREETING:
        return replace(base, reply=replies.GREETING)
    values = slot_values(understanding.slots)
    if own is AgentIntent.REMEMBER:
        fact = str(values.get("fact") or text)
        return replace(base, steps=(Step(first_step, MEMORY_REMEMBER, {"text": fact}),))
    if own is AgentIntent.RECALL:
        query = str(values.get("query") or text)
        return replace(base, steps=(Step(first_step, MEMORY_RECALL, {"query": query}),))
    capability = tables.served.get(intent)
    if capability is None:
        return replace(base, reply=replies.without_tool(intent))
    arguments = capability.arguments(values)
    missing = capability.missing(arguments)
    if missing is not None:
        question = capability.question(missing) or replies.generic_question(missing)
        return replace(base, reply=question, missing=missing)
    step = Step(first_step, capability.tool, arguments, reply=capability.binding.reply)
    return replace(base, steps=(step,))


def plan(understanding: UnderstandResponse, tools: Mapping[str, ToolSpec] | Capabilities) -> Plan:
    """Plan every part of the request; parts are independent, so their steps may run concurrently.

    ``tools``: the capability tables of the catalogue (built once per catalogue), or the
    catalogue's specs by name, whose tables are then built for this call."""
    tables = tools if isinstance(tools, Capabilities) else Capabilities.of(tools.values())
    parts_in = list(understanding.parts) or [understanding]
    planned: list[PlannedPart] = []
    next_step = 1
    for part in parts_in:
        if not part.text:
            part.text = understanding.text
        result = plan_part(part, tables, next_step)
        next_step += len(result.steps)
        planned.append(result)
    return Plan(tuple(planned))
