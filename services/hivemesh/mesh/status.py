"""Translation between domain errors and rich gRPC statuses (google.rpc.Status with details)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from hivemesh.mesh.errors import Code, HivemeshError, InvalidArgument, ResourceExhausted

_DETAILS_KEY = "grpc-status-details-bin"


def grpc_code(code: Code) -> grpc.StatusCode:
    for status in grpc.StatusCode:
        if status.value[0] == int(code):
            return status
    return grpc.StatusCode.UNKNOWN


def to_status(error: HivemeshError, domain: str) -> status_pb2.Status:
    """The google.rpc.Status for a domain error: ErrorInfo always, plus BadRequest or RetryInfo."""
    details: list[any_pb2.Any] = []
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=domain, metadata=error.metadata)
    packed = any_pb2.Any()
    packed.Pack(info)
    details.append(packed)
    if isinstance(error, InvalidArgument) and error.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in error.violations
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
    return status_pb2.Status(code=int(error.code), message=error.message, details=details)


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
    """Decode ErrorInfo, BadRequest and RetryInfo from a failed call."""
    code: grpc.StatusCode = error.code()
    message = str(error.details() or "")
    result = StatusDetails(code=code, message=message)
    status = rpc_status.from_call(cast("grpc.Call", error)) if hasattr(error, "trailing_metadata") else None
    if status is None:
        return result
    reason, domain, meta = "", "", {}
    violations: list[tuple[str, str]] = []
    delay: float | None = None
    for detail in status.details:
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
    return StatusDetails(code, message, reason, domain, meta, tuple(violations), delay)


def internal_status(message: str) -> status_pb2.Status:
    return status_pb2.Status(code=code_pb2.INTERNAL, message=message)


def from_rpc_error(error: grpc.aio.AioRpcError) -> HivemeshError:
    """The domain error for a failed downstream call, keeping its code, reason and metadata, so a
    caller decides retryability from the error itself."""
    from hivemesh.mesh import errors  # noqa: PLC0415 - avoids a cycle at import time

    details = details_of(error)
    by_code: dict[grpc.StatusCode, type[HivemeshError]] = {
        grpc.StatusCode.NOT_FOUND: errors.NotFound,
        grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
        grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
        grpc.StatusCode.ABORTED: errors.Aborted,
        grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
        grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
        grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
        grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
        grpc.StatusCode.CANCELLED: errors.Cancelled,
        grpc.StatusCode.UNIMPLEMENTED: errors.Unimplemented,
    }
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
    kind = by_code.get(details.code, errors.DownstreamError)
    return kind(details.message, reason=details.reason or None, metadata=metadata)
