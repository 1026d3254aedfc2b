"""The check of a tool's intent declarations (``Serves``): made when the tool is declared or
registered, so a declaration that names an argument the tool does not take, or a reply that names
a field its result lacks, fails at start-up rather than when a user's request first needs it."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from hivemesh.tool.model import Serves, ToolSpec

_INTENT = re.compile(r"[a-z][a-z0-9_]{0,63}")
_SLOT = re.compile(r"[a-z][a-z0-9_]{0,63}")


def check_intents(spec: ToolSpec) -> None:
    """Raise ValueError naming the first problem of ``spec``'s intent declarations."""
    seen: set[str] = set()
    properties = _properties(spec.arguments_schema)
    for serves in spec.intents:
        where = f"tool {spec.name!r}, intent {serves.intent!r}"
        if not _INTENT.fullmatch(serves.intent):
            raise ValueError(f"{where}: an intent is lower-case letters, digits and '_', at most 64")
        if serves.intent in seen:
            raise ValueError(f"{where}: declared twice")
        seen.add(serves.intent)
        for argument, fill in serves.arguments.items():
            if argument not in properties:
                raise ValueError(f"{where}: {argument!r} is not an argument of the tool")
            if fill.slot and not _SLOT.fullmatch(fill.slot):
                raise ValueError(f"{where}: slot {fill.slot!r} of {argument!r} is not a slot name")
            if not fill.slot and not fill.question:
                raise ValueError(f"{where}: {argument!r} names neither a slot nor a question")
        _check_reply(where, serves, set(properties) | _properties(spec.result_schema))


def _check_reply(where: str, serves: Serves, known: set[str]) -> None:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(serves.reply) if name is not None]
    except ValueError as exc:
        raise ValueError(f"{where}: the reply template is malformed: {exc}") from None
    for name in fields:
        if name not in known:
            raise ValueError(f"{where}: the reply names {{{name}}}, neither a result field nor an argument")


def _properties(schema: Mapping[str, Any]) -> set[str]:
    properties = schema.get("properties", {})
    return set(properties) if isinstance(properties, Mapping) else set()
