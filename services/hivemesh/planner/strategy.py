"""The built-in planning strategy: from an understood request to tool steps.

Intent and slots choose the tool and its arguments (checked against the tool's schema before any
call); compound requests become several independent steps; a missing required argument becomes a
question; out of scope and "no such tool installed" become honest direct replies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from google.protobuf import json_format

from hivemesh.language.v1.language_service_pb2 import Slot, UnderstandResponse
from hivemesh.tool.v1.tool_service_pb2 import ToolSpec

MEMORY_REMEMBER = "memory.remember"
MEMORY_RECALL = "memory.recall"

OUT_OF_SCOPE_REPLY = (
    "Sorry, that's outside what I can help with. I can calculate, convert units, work with dates and "
    "times, set timers and reminders, keep lists, roll dice, spell words and remember things for you."
)
GREETING_REPLY = "Hello! What can I do for you?"

# Intents people ask for that this agent recognises but ships no tool for.
KNOWN_WITHOUT_TOOL = {
    "weather": "weather forecasts",
    "play_music": "playing music",
    "book_flight": "booking flights",
    "send_email": "sending email",
}


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


def _number(value: Any) -> int | float:
    as_float = float(value)
    return int(as_float) if as_float.is_integer() else as_float


def _calculator(s: Mapping[str, Any], text: str) -> dict[str, Any]:
    # No expression found means nothing to calculate: ask, rather than feed the words to the parser.
    return {"expression": s["expression"]} if s.get("expression") else {}


def _convert(s: Mapping[str, Any], text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if "quantity" in s:
        value, unit = s["quantity"]
        args["value"], args["from_unit"] = _number(value), unit
    if "to_unit" in s:
        args["to_unit"] = s["to_unit"]
    return args


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _current_time(s: Mapping[str, Any], text: str) -> dict[str, Any]:
    return {"location": s["location"]} if s.get("location") else {}


def _weekday(s: Mapping[str, Any], text: str) -> dict[str, Any]:
    return {"date": _iso(s["date"])} if "date" in s else {}


def _date_add(s: Mapping[str, Any], text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if "date" in s:
        args["date"] = _iso(s["date"])
    if "offset_days" in s:
        args["days"] = int(s["offset_days"])
    return args


def _days_between(s: Mapping[str, Any], text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if "start_date" in s:
        args["start"] = _iso(s["start_date"])
    if "end_date" in s:
        args["end"] = _iso(s["end_date"])
    return args


def _timer(s: Mapping[str, Any], text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if "duration" in s:
        args["seconds"] = _number(s["duration"].total_seconds())
    if s.get("label"):
        args["label"] = s["label"]
    return args


def _reminder(s: Mapping[str, Any], text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if s.get("reminder_text"):
        args["text"] = s["reminder_text"]
    if "due" in s:
        due = s["due"]
        args["due"] = due.isoformat() if isinstance(due, dt.datetime) else str(due)
    return args


def _list_items(s: Mapping[str, Any], text: str) -> dict[str, Any]:
    args = _list_only(s, text)
    if s.get("items"):
        args["items"] = list(s["items"])
    return args


def _list_only(s: Mapping[str, Any], text: str) -> dict[str, Any]:
    return {"list": s["list_name"]} if s.get("list_name") else {}


def _dice(s: Mapping[str, Any], text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if "sides" in s:
        args["sides"] = int(s["sides"])
    if "count" in s:
        args["count"] = int(s["count"])
    return args


def _nothing(s: Mapping[str, Any], text: str) -> dict[str, Any]:
    return {}


def _spell(s: Mapping[str, Any], text: str) -> dict[str, Any]:
    return {"word": s["word"]} if s.get("word") else {}


ArgumentMapper = Callable[[Mapping[str, Any], str], dict[str, Any]]

# intent -> (tool, how slots become its arguments)
INTENT_TOOLS: dict[str, tuple[str, ArgumentMapper]] = {
    "calculator": ("calculator", _calculator),
    "unit_conversion": ("convert_units", _convert),
    "current_time": ("current_time", _current_time),
    "weekday": ("weekday", _weekday),
    "date_arithmetic": ("date_add", _date_add),
    "days_between": ("days_between", _days_between),
    "set_timer": ("set_timer", _timer),
    "set_reminder": ("set_reminder", _reminder),
    "list_add": ("list_add", _list_items),
    "list_remove": ("list_remove", _list_items),
    "list_show": ("list_show", _list_only),
    "list_clear": ("list_clear", _list_only),
    "roll_dice": ("roll_dice", _dice),
    "flip_coin": ("flip_coin", _nothing),
    "spell": ("spell", _spell),
}

# The question asked when a required argument is missing.
QUESTIONS: dict[tuple[str, str], str] = {
    ("calculator", "expression"): "What would you like me to calculate?",
    ("convert_units", "value"): "How much should I convert?",
    ("convert_units", "from_unit"): "Which unit are you converting from?",
    ("convert_units", "to_unit"): "Which unit should I convert to?",
    ("weekday", "date"): "Which date do you mean?",
    ("date_add", "date"): "Starting from which date?",
    ("date_add", "days"): "How many days should I add or subtract?",
    ("days_between", "start"): "From which date?",
    ("days_between", "end"): "Until which date?",
    ("set_timer", "seconds"): "How long should the timer run?",
    ("set_reminder", "text"): "What should I remind you about?",
    ("set_reminder", "due"): "When should I remind you?",
    ("list_add", "list"): "Which list should I add to?",
    ("list_add", "items"): "What should I add?",
    ("list_remove", "list"): "Which list should I remove it from?",
    ("list_remove", "items"): "What should I remove?",
    ("list_show", "list"): "Which list do you want to see?",
    ("list_clear", "list"): "Which list should I clear?",
    ("spell", "word"): "Which word should I spell?",
}


@dataclass(frozen=True)
class Step:
    """One call: a tool (or a memory operation) with its arguments."""

    number: int
    tool: str
    arguments: dict[str, Any]
    depends_on: tuple[int, ...] = ()
    optional: bool = False


@dataclass(frozen=True)
class PlannedPart:
    """The plan for one part of a request: steps, or a direct reply, or a question."""

    intent: str
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


def _schema_problem(spec: ToolSpec, arguments: Mapping[str, Any]) -> str | None:
    """The first required argument that is missing, per the tool's JSON Schema."""
    schema = json_format.MessageToDict(spec.arguments_schema)
    for name in schema.get("required", []):
        if name not in arguments or arguments[name] in ("", None, []):
            return str(name)
    return None


def plan_part(
    understanding: UnderstandResponse, tools: Mapping[str, ToolSpec], first_step: int
) -> PlannedPart:
    intent = understanding.intent
    base = PlannedPart(intent, understanding.confidence, understanding.out_of_scope)
    text = understanding.text
    if understanding.out_of_scope or intent in ("oos", ""):
        return replace(base, reply=OUT_OF_SCOPE_REPLY)
    if intent == "greeting":
        return replace(base, reply=GREETING_REPLY)
    values = slot_values(understanding.slots)
    if intent == "remember":
        fact = str(values.get("fact") or text)
        return replace(base, steps=(Step(first_step, MEMORY_REMEMBER, {"text": fact}),))
    if intent == "recall":
        query = str(values.get("query") or text)
        return replace(base, steps=(Step(first_step, MEMORY_RECALL, {"query": query}),))
    if intent in KNOWN_WITHOUT_TOOL:
        return replace(
            base, reply=f"I understood that, but no tool for {KNOWN_WITHOUT_TOOL[intent]} is installed."
        )
    mapping = INTENT_TOOLS.get(intent)
    if mapping is None:
        return replace(base, reply=f"I understood that as '{intent}', but no tool for it is installed.")
    tool_name, mapper = mapping
    spec = tools.get(tool_name)
    if spec is None:
        return replace(
            base, reply=f"I understood that as '{intent}', but the {tool_name} tool is not installed."
        )
    arguments = mapper(values, text)
    missing = _schema_problem(spec, arguments)
    if missing is not None:
        question = QUESTIONS.get((tool_name, missing), f"What is the {missing.replace('_', ' ')}?")
        return replace(base, reply=question, missing=missing)
    return replace(base, steps=(Step(first_step, tool_name, arguments),))


def plan(understanding: UnderstandResponse, tools: Mapping[str, ToolSpec]) -> Plan:
    """Plan every part of the request; parts are independent, so their steps may run concurrently."""
    parts_in = list(understanding.parts) or [understanding]
    planned: list[PlannedPart] = []
    next_step = 1
    for part in parts_in:
        if not part.text:
            part.text = understanding.text
        result = plan_part(part, tools, next_step)
        next_step += len(result.steps)
        planned.append(result)
    return Plan(tuple(planned))
