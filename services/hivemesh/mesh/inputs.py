"""Checks of the protobuf well-known types a caller sends, beyond what the contracts' protovalidate
rules state: a Timestamp or a Duration inside the range its type defines, a Struct whose numbers
JSON can carry. Each raises InvalidArgument naming the field, so such input is the caller's error
instead of an exception deeper down (INTERNAL).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from hivemesh.mesh.errors import QUOTE_LIMIT, InvalidArgument, clip

# The range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
MIN_TIMESTAMP_S = -62_135_596_800
MAX_TIMESTAMP_S = 253_402_300_799
# The range of google.protobuf.Duration: about 10,000 years either way.
MAX_DURATION_S = 315_576_000_000
_MAX_NANOS = 999_999_999


def timestamp_seconds(value: timestamp_pb2.Timestamp, field: str) -> float:
    """Seconds since the epoch of a Timestamp the caller sent as ``field``."""
    if not (MIN_TIMESTAMP_S <= value.seconds <= MAX_TIMESTAMP_S and 0 <= value.nanos <= _MAX_NANOS):
        raise InvalidArgument.field(
            field, "must be a valid timestamp, from 0001-01-01 to 9999-12-31 with nanos from 0 to 999999999"
        )
    return value.seconds + value.nanos / 1e9


def ttl_seconds(value: duration_pb2.Duration, field: str) -> float:
    """Seconds of a time to live the caller sent as ``field``: a valid Duration that ends before the
    last time a Timestamp can hold (so the expiry can be reported back)."""
    seconds, nanos = value.seconds, value.nanos
    valid = abs(seconds) <= MAX_DURATION_S and abs(nanos) <= _MAX_NANOS and seconds * nanos >= 0
    if not valid or seconds + nanos / 1e9 > MAX_TIMESTAMP_S - time.time():
        raise InvalidArgument.field(field, "must be a valid duration that ends before 9999-12-31")
    return seconds + nanos / 1e9


def require_finite(value: struct_pb2.Struct, field: str) -> None:
    """Refuse NaN and the infinities anywhere in a Struct: JSON has no such numbers, so a value
    holding one could neither be stored as JSON nor read back."""
    for path, number in _numbers(value, field):
        if not math.isfinite(number):
            raise InvalidArgument.field(path, "must be a finite number (JSON has no NaN or Infinity)")


def _numbers(value: struct_pb2.Struct | struct_pb2.ListValue, path: str) -> Iterator[tuple[str, float]]:
    items = (
        ((f"{path}[{index}]", item) for index, item in enumerate(value.values))
        if isinstance(value, struct_pb2.ListValue)
        # Keys are the caller's: clipped, so that paths stay short however long or deep they are.
        else ((f"{path}.{clip(key, QUOTE_LIMIT)}", item) for key, item in value.fields.items())
    )
    for where, item in items:
        kind = item.WhichOneof("kind")
        if kind == "number_value":
            yield where, item.number_value
        elif kind == "struct_value":
            yield from _numbers(item.struct_value, where)
        elif kind == "list_value":
            yield from _numbers(item.list_value, where)
