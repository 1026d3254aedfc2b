"""Errors of the HTTP doors: the gateway's gRPC status (or a task's error) as an HTTP status and an
OpenAI-shaped body, ``{"error": {"message", "type", "param", "code"}}``.

Bad input is 4xx, never 500; RESOURCE_EXHAUSTED is 429 with ``Retry-After`` from the RetryInfo; a
gateway that cannot be reached is 503 (``Retry-After: 1``) and a deadline 504. ``code`` is the
gateway's ErrorInfo reason in lower case (``rate_limited``, ``credentials_missing``), else the
status code's name."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from hivemesh.common.v1.task_pb2 import Task, TaskState
from hivemesh.mesh.errors import Code
from hivemesh.mesh.status import details_of, grpc_code

# gRPC code -> (HTTP status, OpenAI error type).
_BY_CODE: Mapping[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.FAILED_PRECONDITION: (400, "invalid_request_error"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "invalid_request_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "authentication_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found_error"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "conflict_error"),
    grpc.StatusCode.ABORTED: (409, "conflict_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "server_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "service_unavailable_error"),
    grpc.StatusCode.CANCELLED: (503, "service_unavailable_error"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout_error"),
}
_INTERNAL = (500, "server_error")


@dataclass(frozen=True)
class HttpError(Exception):
    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    # Seconds the caller should wait before trying again (429, 503).
    retry_after_s: float | None = None

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"retry-after": str(max(1, math.ceil(self.retry_after_s)))}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> HttpError:
    return HttpError(400, message, "invalid_request_error", code, param)


def from_rpc_error(error: grpc.aio.AioRpcError, params: Mapping[str, str] | None = None) -> HttpError:
    """The HTTP error for a failed gateway call; ``params`` names the request parameter that stands
    for a field of the gateway's request (``text`` -> ``messages``)."""
    params = params or {}
    details = details_of(error)
    status, kind = _BY_CODE.get(details.code, _INTERNAL)
    param = next((params.get(f, f) for f, _ in details.field_violations), None)
    message = details.message
    if details.field_violations:
        message = "; ".join(f"{params.get(f, f)}: {d}" for f, d in details.field_violations)
    retry = details.retry_delay_s
    if details.code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE) and retry is None:
        retry = 1.0
    return HttpError(
        status,
        message or details.code.name.lower(),
        kind,
        (details.reason or details.code.name).lower(),
        param,
        retry,
    )


def from_task(task: Task) -> HttpError:
    """The HTTP error for a task that ended without a reply (failed, canceled, rejected)."""
    if task.state == TaskState.TASK_STATE_CANCELED:
        return HttpError(409, "the task was canceled", "conflict_error", "task_canceled")
    if not task.HasField("error"):
        state = TaskState.Name(task.state).removeprefix("TASK_STATE_").lower()
        return HttpError(502, f"the task ended without an answer ({state})", "server_error", "no_answer")
    error = task.error
    try:
        code = grpc_code(Code(error.code))
    except ValueError:
        code = grpc.StatusCode.UNKNOWN
    status, kind = _BY_CODE.get(code, _INTERNAL)
    return HttpError(
        status,
        error.message or error.reason or "the task failed",
        kind,
        (error.reason or code.name).lower(),
        retry_after_s=1.0 if code == grpc.StatusCode.RESOURCE_EXHAUSTED else None,
    )
