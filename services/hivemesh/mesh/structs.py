"""google.protobuf.Struct as the JSON values it carries."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

# Whole numbers up to this size are exact in a double, and come back as ints.
_EXACT_INTEGERS = 2**53


def plain(message: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as JSON values. Unlike ``json_format``, which fails on them (and the failure would
    be an INTERNAL error), NaN and the infinities come through as floats, for an argument check to
    refuse by name."""
    return {key: _value(item) for key, item in message.fields.items()}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        # A Struct carries every number as a double; whole numbers become ints again (2.0 -> 2), so
        # schemas, tools and error messages see the numbers the caller wrote.
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) < _EXACT_INTEGERS else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return plain(value.struct_value)
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    return None
