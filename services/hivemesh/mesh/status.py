"""Translation between domain errors and rich gRPC statuses (google.rpc.Status with details).

Both directions are bounded and never fail: a status sent is at most ``STATUS_LIMIT`` bytes (see
``hivemesh.mesh.errors``), and a status received whose details cannot be read (corrupt, or for
another code than the call's, as when a client refused oversized trailers) is taken for what the
call's own code and message say.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2

from hivemesh.mesh import errors
from hivemesh.mesh.errors import (
    MESSAGE_LIMIT,
    STATUS_LIMIT,
    VIOLATION_LIMIT,
    Code,
    FieldViolation,
    HivemeshError,
    InvalidArgument,
    ResourceExhausted,
    bounded_metadata,
    clip,
)

_DETAILS_KEY = "grpc-status-details-bin"


def grpc_code(code: Code) -> grpc.StatusCode:
    for status in grpc.StatusCode:
        if status.value[0] == int(code):
            return status
    return grpc.StatusCode.UNKNOWN


def to_status(error: HivemeshError, domain: str) -> status_pb2.Status:
    """The google.rpc.Status for a domain error: ErrorInfo always, plus BadRequest or RetryInfo,
    within ``STATUS_LIMIT`` bytes (violations, then metadata entries, dropped from the last)."""
    message = clip(error.message, MESSAGE_LIMIT)
    metadata = bounded_metadata(error.metadata)
    violations: list[FieldViolation] = []
    if isinstance(error, InvalidArgument):
        violations = [v.bounded() for v in error.violations[:VIOLATION_LIMIT]]
    status = _status(error, domain, message, metadata, violations)
    while status.ByteSize() > STATUS_LIMIT and (violations or metadata):
        if len(violations) > 1 or (violations and not metadata):
            violations.pop()
        else:
            metadata.pop(next(reversed(metadata)))
        status = _status(error, domain, message, metadata, violations)
    return status


def _status(
    error: HivemeshError,
    domain: str,
    message: str,
    metadata: dict[str, str],
    violations: list[FieldViolation],
) -> status_pb2.Status:
    details: list[any_pb2.Any] = []
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=domain, metadata=metadata)
    packed = any_pb2.Any()
    packed.Pack(info)
    details.append(packed)
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    if isinstance(error, ResourceExhausted):
        seconds = max(0.0, error.retry_after_s)
        whole = math.floor(seconds)
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
        )
        packed = any_pb2.Any()
        packed.Pack(retry)
        details.append(packed)
    return status_pb2.Status(code=int(error.code), message=message, details=details)


def trailing_metadata(status: status_pb2.Status) -> tuple[tuple[str, str | bytes], ...]:
    return ((_DETAILS_KEY, status.SerializeToString()),)


@dataclass(frozen=True)
class StatusDetails:
    """What a client can read from a failed call: code, message and the decoded details."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: tuple[tuple[str, str], ...] = ()
    retry_delay_s: float | None = None


def details_of(error: grpc.aio.AioRpcError | grpc.RpcError) -> StatusDetails:
    """Decode ErrorInfo, BadRequest and RetryInfo from a failed call. Details that cannot be read
    are left out: the result keeps the call's own code and message."""
    code: grpc.StatusCode = error.code()
    message = str(error.details() or "")
    result = StatusDetails(code=code, message=message)
    status = _rich_status(error, code)
    if status is None:
        return result
    reason, domain, meta = "", "", {}
    violations: list[tuple[str, str]] = []
    delay: float | None = None
    for detail in status.details:
        try:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain, meta = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations = [(v.field, v.description) for v in bad.field_violations]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
        except DecodeError:
            continue  # one unreadable detail does not hide the others
    return StatusDetails(code, message, reason, domain, meta, tuple(violations), delay)


def _rich_status(
    error: grpc.aio.AioRpcError | grpc.RpcError, code: grpc.StatusCode
) -> status_pb2.Status | None:
    """The google.rpc.Status a server put in the trailers, when it is readable and for the call's code.

    A status for another code is not the call's: the transport ended the call otherwise (a client
    refusing trailers over its metadata limit reports RESOURCE_EXHAUSTED, whatever the server said).
    """
    trailing = getattr(error, "trailing_metadata", None)
    if trailing is None:
        return None
    for key, value in trailing() or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except (DecodeError, RecursionError):
            return None
        return status if status.code == code.value[0] else None
    return None


def internal_status(message: str) -> status_pb2.Status:
    return status_pb2.Status(code=code_pb2.INTERNAL, message=clip(message, MESSAGE_LIMIT))


# The domain error of each status code (INVALID_ARGUMENT and RESOURCE_EXHAUSTED carry more).
_BY_CODE: dict[grpc.StatusCode, type[HivemeshError]] = {
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.ABORTED: errors.Aborted,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.OUT_OF_RANGE: errors.OutOfRange,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.CANCELLED: errors.Cancelled,
    grpc.StatusCode.UNIMPLEMENTED: errors.Unimplemented,
}


def from_rpc_error(error: grpc.aio.AioRpcError) -> HivemeshError:
    """The domain error for a failed downstream call, keeping its code, reason and metadata, so a
    caller decides retryability from the error itself: a client error (INVALID_ARGUMENT, NOT_FOUND,
    OUT_OF_RANGE...) stays one and is never retried. Never raises, whatever the trailers hold."""
    details = details_of(error)
    metadata = {**details.metadata, "domain": details.domain} if details.domain else details.metadata
    if details.code == grpc.StatusCode.INVALID_ARGUMENT:
        violations = [errors.FieldViolation(f, d) for f, d in details.field_violations]
        return InvalidArgument(
            details.message, violations=violations, reason=details.reason or None, metadata=metadata
        )
    if details.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ResourceExhausted(
            details.message,
            retry_after_s=details.retry_delay_s or 1.0,
            reason=details.reason or None,
            metadata=metadata,
        )
    kind = _BY_CODE.get(details.code, errors.DownstreamError)
    return kind(details.message, reason=details.reason or None, metadata=metadata)


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    """Inside, a failed call to another service raises the domain error its status carries (code
    and ErrorInfo reason kept), so callers tell retryable failures from final ones without grpc."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc) from exc
