"""Domain errors: what went wrong, in terms any caller understands, with no dependency on grpc.

Each error carries a canonical code (the numeric google.rpc.Code), a stable UPPER_SNAKE ``reason``
and values that vary per request in ``metadata``. The server's error interceptor turns them into a
gRPC status with ``google.rpc.ErrorInfo`` (and ``BadRequest`` or ``RetryInfo`` where they apply).
Whether an error may be retried is a property of the error, not of the caller.
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


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: its path (``scope.tenant_id``, ``arguments.amount``) and what is wrong."""

    field: str
    description: str


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
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})

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
        self.violations = tuple(violations)

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
