"""Domain errors: what went wrong, in terms any caller understands, with no dependency on grpc.

Each error carries a canonical code (the numeric google.rpc.Code), a stable UPPER_SNAKE ``reason``
and values that vary per request in ``metadata``. The server's error interceptor turns them into a
gRPC status with ``google.rpc.ErrorInfo`` (and ``BadRequest`` or ``RetryInfo`` where they apply).
Whether an error may be retried is a property of the error, not of the caller.

What an error carries is bounded whatever the input (see ``clip``): a caller that sends a 3 MB value
gets back a few hundred bytes about it, never the value itself, so an error always fits in the
trailers a gRPC client accepts (8 KiB by default) and costs each hop little to carry.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class Code(enum.IntEnum):
    """The canonical status codes (google.rpc.Code), named as gRPC names them."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# Codes after which the same request may succeed unchanged.
RETRYABLE_CODES = frozenset({Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED, Code.ABORTED, Code.DEADLINE_EXCEEDED})

# The bounds on what an error carries, in UTF-8 bytes. A longer text keeps its head and its tail
# around a marker that says how much was cut, so both the field named at the start of a description
# and the verdict at its end survive ("arguments.expression: '((((…(3903 bytes cut)…))))' is too long").
MESSAGE_LIMIT = 512  # the status message
DETAIL_LIMIT = 256  # an ErrorInfo metadata value, a field path, a field violation's description
NAME_LIMIT = 64  # the reason, an ErrorInfo metadata key
QUOTE_LIMIT = 64  # a value quoted in a message (``quote``)
METADATA_LIMIT = 16  # ErrorInfo metadata entries
VIOLATION_LIMIT = 16  # BadRequest field violations
# The whole google.rpc.Status in the trailers, message and details: violations, then metadata
# entries, are left out from the last until it fits. With the message (also sent as grpc-message,
# at most three times MESSAGE_LIMIT once percent-encoded) the trailers stay under 6 KiB.
STATUS_LIMIT = 4096


def clip(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` UTF-8 bytes; otherwise its head and tail around a marker
    saying how many bytes were cut. Characters are never split; lone surrogates (which UTF-8 cannot
    carry) are written as escapes."""
    try:
        data = text.encode()
    except UnicodeEncodeError:
        data = text.encode("utf-8", "backslashreplace")
        text = data.decode()
    if len(data) <= limit:
        return text
    # The marker's length with the largest count it can show bounds the room left for the text.
    room = limit - len(f"…({len(data)} bytes cut)…".encode())
    if room < 8:
        return data[:limit].decode("utf-8", "ignore")
    head = data[: room - room // 2].decode("utf-8", "ignore")
    tail = data[len(data) - room // 2 :].decode("utf-8", "ignore")
    cut = len(data) - len(head.encode()) - len(tail.encode())
    return f"{head}…({cut} bytes cut)…{tail}"


def quote(value: object) -> str:
    """``value`` as a message quotes it (its repr), at most ``QUOTE_LIMIT`` bytes."""
    return clip(repr(value), QUOTE_LIMIT)


def bounded_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """The first ``METADATA_LIMIT`` entries, keys and values clipped."""
    bounded: dict[str, str] = {}
    for key, value in metadata.items():
        if len(bounded) >= METADATA_LIMIT:
            break
        bounded[clip(str(key), NAME_LIMIT)] = clip(str(value), DETAIL_LIMIT)
    return bounded


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: its path (``scope.tenant_id``, ``arguments.amount``) and what is wrong."""

    field: str
    description: str

    def bounded(self) -> FieldViolation:
        return FieldViolation(clip(self.field, DETAIL_LIMIT), clip(self.description, DETAIL_LIMIT))


class HivemeshError(Exception):
    """Base of all domain errors. Subclasses fix the code; ``reason`` names the case."""

    code: Code = Code.UNKNOWN
    default_reason: str = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.message = clip(message, MESSAGE_LIMIT)
        super().__init__(self.message)
        self.reason = clip(reason or self.default_reason, NAME_LIMIT)
        self.metadata: dict[str, str] = bounded_metadata(metadata or {})

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES


class InvalidArgument(HivemeshError):
    code = Code.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        violations: Sequence[FieldViolation] = (),
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = tuple(v.bounded() for v in violations[:VIOLATION_LIMIT])

    @classmethod
    def field(cls, path: str, description: str, *, reason: str | None = None) -> InvalidArgument:
        """The usual case: one field is wrong. The message names it."""
        return cls(
            f"{path}: {description}",
            violations=[FieldViolation(path, description)],
            reason=reason,
            metadata={"field": path},
        )


class NotFound(HivemeshError):
    code = Code.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(HivemeshError):
    code = Code.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(HivemeshError):
    code = Code.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Aborted(HivemeshError):
    code = Code.ABORTED
    default_reason = "ABORTED"


class OutOfRange(HivemeshError):
    code = Code.OUT_OF_RANGE
    default_reason = "OUT_OF_RANGE"


class PermissionDenied(HivemeshError):
    code = Code.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(HivemeshError):
    code = Code.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class DeadlineExceeded(HivemeshError):
    code = Code.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


class Unavailable(HivemeshError):
    code = Code.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class Cancelled(HivemeshError):
    code = Code.CANCELLED
    default_reason = "CANCELLED"


class Unimplemented(HivemeshError):
    code = Code.UNIMPLEMENTED
    default_reason = "UNIMPLEMENTED"


class ResourceExhausted(HivemeshError):
    """Overload or quota: the caller should come back after ``retry_after_s``."""

    code = Code.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after_s = retry_after_s


class DownstreamError(HivemeshError):
    """A downstream service failed with INTERNAL, UNKNOWN or DATA_LOSS: not the caller's fault."""

    code = Code.INTERNAL
    default_reason = "DOWNSTREAM_FAILED"
