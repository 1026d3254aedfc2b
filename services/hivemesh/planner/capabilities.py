"""The planner's capability tables: which tool serves each intent and how, read from the tools'
own declarations (``ToolSpec.intents``) in the live catalogue.

The tables are built once per catalogue (``CapabilityCache``), not per task. They know only what
the catalogue declares: a spec without declarations serves no intent (it can still be called by
name, as the llm strategy does), and an intent no listed tool declares has no tool, whatever tool
modules the planner's own installation happens to contain.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from hivemesh.mesh.intents import AgentIntent, Intent
from hivemesh.tool.v1.tool_service_pb2 import (
    SLOT_PART_QUANTITY_UNIT,
    SLOT_PART_QUANTITY_VALUE,
    ArgumentBinding,
    IntentBinding,
    ToolSpec,
)

_log = logging.getLogger(__name__)

_INTENT = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class Capability:
    """One intent served by one installed tool."""

    intent: Intent
    tool: str
    binding: IntentBinding
    # Required arguments, in the schema's order, and the JSON type of each argument.
    required: tuple[str, ...]
    types: Mapping[str, str]

    def arguments(self, slots: Mapping[str, Any]) -> dict[str, Any]:
        """The tool's arguments from the understood slots (by name, as ``slot_values`` gives them)."""
        arguments: dict[str, Any] = {}
        for fill in self.binding.arguments:
            if not fill.slot or fill.slot not in slots:
                continue
            value = _argument(_part(fill, slots[fill.slot]), self.types.get(fill.argument, ""))
            if value not in ("", None, []):
                arguments[fill.argument] = value
        return arguments

    def missing(self, arguments: Mapping[str, Any]) -> str | None:
        """The first required argument that ``arguments`` lacks."""
        for name in self.required:
            if name not in arguments or arguments[name] in ("", None, []):
                return name
        return None

    def question(self, argument: str) -> str:
        fill = self._fill(argument)
        return fill.question if fill is not None else ""

    def joiner(self, argument: str) -> str:
        fill = self._fill(argument)
        return fill.answer_joiner if fill is not None else ""

    def _fill(self, argument: str) -> ArgumentBinding | None:
        return next((f for f in self.binding.arguments if f.argument == argument), None)


@dataclass(frozen=True)
class Capabilities:
    """The capability tables of one catalogue."""

    served: Mapping[Intent, Capability]

    @classmethod
    def of(cls, specs: Iterable[ToolSpec]) -> Capabilities:
        served: dict[Intent, Capability] = {}
        for spec in specs:
            for binding in spec.intents:
                if not _INTENT.fullmatch(binding.intent):
                    _log.warning("tool %s declares an invalid intent %r; ignored", spec.name, binding.intent)
                    continue
                intent = Intent(binding.intent)
                if AgentIntent.of(intent) is not None:
                    _log.warning("tool %s declares %r, which the agent answers itself", spec.name, intent)
                    continue
                if intent in served:
                    # Two tools for one intent: the first by name serves it, so plans are stable.
                    _log.warning(
                        "intent %s is served by %s and %s; %s serves it",
                        intent,
                        served[intent].tool,
                        spec.name,
                        served[intent].tool,
                    )
                    continue
                served[intent] = _capability(spec, binding)
        return cls(served)

    @property
    def intents(self) -> list[str]:
        """The intents the catalogue's tools serve, sorted (what Understand is told is installed)."""
        return sorted(self.served)

    def joiner(self, intent: Intent, argument: str) -> str:
        capability = self.served.get(intent)
        return capability.joiner(argument) if capability is not None else ""


class CapabilityCache:
    """The tables of the latest catalogue, rebuilt only when the catalogue changes. The planner's
    copy of the catalogue hands out the same spec objects while it is current, so the check is a
    comparison of identities, and the tables are built once per catalogue version."""

    def __init__(self) -> None:
        self._specs: tuple[ToolSpec, ...] = ()
        self._tables: Capabilities | None = None

    def tables(self, specs: Sequence[ToolSpec]) -> Capabilities:
        held, tables = self._specs, self._tables
        if (
            tables is None
            or len(held) != len(specs)
            or any(a is not b for a, b in zip(held, specs, strict=True))
        ):
            tables = self._tables = Capabilities.of(specs)
            self._specs = tuple(specs)  # kept, so that no identity compared is reused
        return tables


def _capability(spec: ToolSpec, binding: IntentBinding) -> Capability:
    schema = json_format.MessageToDict(spec.arguments_schema)
    properties = schema.get("properties", {})
    types = {
        str(name): str(prop.get("type", ""))
        for name, prop in (properties.items() if isinstance(properties, dict) else ())
        if isinstance(prop, dict)
    }
    return Capability(
        Intent(binding.intent), spec.name, binding, tuple(str(n) for n in schema.get("required", [])), types
    )


def _part(fill: ArgumentBinding, value: Any) -> Any:
    if fill.part in (SLOT_PART_QUANTITY_VALUE, SLOT_PART_QUANTITY_UNIT):
        if not isinstance(value, tuple):
            return None
        return value[0] if fill.part == SLOT_PART_QUANTITY_VALUE else value[1]
    return value


def _argument(value: Any, json_type: str) -> Any:
    """A slot's value as the argument's JSON type wants it."""
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, dt.date):  # a datetime too
        return value.isoformat()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if json_type == "integer":
        return int(value)
    as_float = float(value)
    return int(as_float) if as_float.is_integer() else as_float


class _Reply(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, float) and value.is_integer() and not format_spec:
            value = int(value)
        return str(super().format_field(value, format_spec))


def phrase(template: str, arguments: Mapping[str, Any], result: Mapping[str, Any]) -> str | None:
    """The reply a declaration's template makes of a result; None when the result lacks a field it
    names (a tool that changed), so the tool's own display is used."""
    if not template:
        return None
    try:
        return _Reply().vformat(template, (), {**arguments, **result})
    except (KeyError, IndexError, ValueError):
        return None
