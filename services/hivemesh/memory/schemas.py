"""Record kinds and their JSON Schemas; a value is checked against its kind's schema on every put."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from hivemesh.mesh.errors import InvalidArgument, quote
from hivemesh.world import zones

LIST_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": {"type": "string"}}},
}
REMINDER_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["text", "due", "task_id", "kind"],
    "properties": {
        "text": {"type": "string"},
        "due": {"type": "string", "format": "date-time"},
        "task_id": {"type": "string"},
        "kind": {"enum": ["timer", "reminder"]},
        "fired": {"type": "boolean"},
    },
}
# Profile facts are free-form; a time zone among them must be an IANA name ("Europe/Paris").
PROFILE_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {"time_zone": {"type": "string", "format": "time-zone"}},
}

DEFAULT_KINDS: Mapping[str, Mapping[str, Any]] = {
    "list": LIST_SCHEMA,
    "reminder": REMINDER_SCHEMA,
    "profile": PROFILE_SCHEMA,
}


def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the "type" keyword reports non-strings
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    # RFC 3339 requires a full date, a time and an offset.
    return "T" in value.upper() and parsed.tzinfo is not None


def _is_time_zone(value: object) -> bool:
    return not isinstance(value, str) or zones.is_zone(value)


def json_path(prefix: str, path: Iterable[str | int]) -> str:
    """``value.items[2]`` from the path of a schema error."""
    out = prefix
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class RecordKinds:
    """The registered kinds. Unknown kinds are rejected, so typos never create new kinds."""

    def __init__(self, kinds: Mapping[str, Mapping[str, Any]] = DEFAULT_KINDS) -> None:
        checker = FormatChecker(formats=())
        checker.checks("date-time")(_is_rfc3339)
        checker.checks("time-zone")(_is_time_zone)
        self._validators = {
            kind: Draft202012Validator(dict(schema), format_checker=checker) for kind, schema in kinds.items()
        }

    def require(self, kind: str) -> None:
        if kind not in self._validators:
            raise InvalidArgument.field(
                "kind",
                f"unknown record kind {kind!r}; known kinds: {', '.join(sorted(self._validators))}",
                reason="UNKNOWN_RECORD_KIND",
            )

    def check(self, kind: str, value: Mapping[str, Any]) -> None:
        self.require(kind)
        error = best_match(self._validators[kind].iter_errors(dict(value)))
        if error is not None:
            # jsonschema quotes the offending value whole ("[...] is not of type 'object'"): quoted
            # short instead, the message stays about the field whatever the value's size.
            whole = repr(error.instance)
            description = error.message.replace(whole, quote(error.instance), 1)
            raise InvalidArgument.field(
                json_path("value", error.absolute_path), description, reason="RECORD_SCHEMA_VIOLATION"
            )
