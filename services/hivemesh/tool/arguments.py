"""Checks a call's arguments against its tool's JSON Schema before the tool runs.

Every violation is reported with its JSON path below ``arguments`` (``arguments.items[2]``), the
form BadRequest field violations use, so a caller (or a planner repairing a plan) knows what to fix.
A number must be finite: NaN and the infinities are no JSON numbers, and a protobuf Struct can carry
them only as doubles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from hivemesh.mesh.errors import FieldViolation, InvalidArgument
from hivemesh.tool.model import JsonObject

INVALID_TOOL_ARGUMENTS = "INVALID_TOOL_ARGUMENTS"


def compile_schema(schema: JsonObject) -> Validator:
    """A validator for ``schema`` (its declared draft, 2020-12 by default); raises on a bad schema."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(dict(schema))
    validator: Validator = cls(dict(schema))
    return validator


def check(tool_name: str, validator: Validator, arguments: JsonObject) -> None:
    """Raise InvalidArgument (reason INVALID_TOOL_ARGUMENTS) naming every violated path."""
    # A value that is not a number at all is judged alone: the schema has nothing to say of it.
    violations = list(_non_finite(arguments, "arguments")) or sorted(
        _violations(validator.iter_errors(arguments)), key=lambda v: v.field
    )
    if not violations:
        return
    text = "; ".join(f"{v.field}: {v.description}" for v in violations)
    raise InvalidArgument(
        f"invalid arguments for {tool_name}: {text}",
        violations=violations,
        reason=INVALID_TOOL_ARGUMENTS,
        metadata={"field": violations[0].field, "tool": tool_name},
    )


def _violations(errors: Iterable[ValidationError]) -> Iterable[FieldViolation]:
    for error in errors:
        base = _path(error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            for name in _names(error.validator_value):
                if name not in error.instance:
                    yield FieldViolation(f"{base}.{name}", "is required")
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
            for name in sorted(k for k in error.instance if k not in known):
                yield FieldViolation(f"{base}.{name}", "is not a known argument")
        else:
            yield FieldViolation(base, error.message)


def _non_finite(value: Any, path: str) -> Iterable[FieldViolation]:
    if isinstance(value, float) and not math.isfinite(value):
        yield FieldViolation(path, f"must be a finite number, not {value}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _non_finite(item, f"{path}.{key}")
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for index, item in enumerate(value):
            yield from _non_finite(item, f"{path}[{index}]")


def _names(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _path(parts: Iterable[Any]) -> str:
    path = "arguments"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path
