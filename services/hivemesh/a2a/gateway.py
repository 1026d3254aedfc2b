"""What the A2A handler needs from the gateway, and the gRPC adapter that provides it.

The caller's credentials are passed through as they came (see ``credentials_of``): the gateway
authenticates every call itself and confines it to the credentials' tenant, so this front door
holds no keys and decides nothing about who may see what.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Protocol

import grpc
from a2a.utils.errors import (
    A2AError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskEvent
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh import tls as transport
from hivemesh.mesh.config import TlsConfig
from hivemesh.mesh.status import details_of
from hivemesh.tool.v1.tool_service_pb2 import ToolSpec

if TYPE_CHECKING:
    from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceAsyncStub

# The prefix of hivemesh API keys (``hmk_<key id>_<secret>``), which may come as a bearer token.
API_KEY_PREFIX = "hmk_"

Credentials = tuple[tuple[str, str], ...]


def credentials_of(headers: Mapping[str, str]) -> Credentials:
    """The gateway metadata for an HTTP caller's credentials: ``Authorization: Bearer hmk_...``
    (or ``X-API-Key: hmk_...``) becomes ``x-api-key``, any other bearer token ``authorization``."""
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        if token.startswith(API_KEY_PREFIX):
            return (("x-api-key", token),)
        return (("authorization", f"Bearer {token}"),)
    key = headers.get("x-api-key", "").strip()
    return (("x-api-key", key),) if key else ()


class TaskGateway(Protocol):
    async def submit(self, credentials: Credentials, request_id: str, text: str, scope: Scope) -> Task: ...

    async def answer(self, credentials: Credentials, task_id: str, request_id: str, text: str) -> Task: ...

    async def get(self, credentials: Credentials, task_id: str) -> Task: ...

    async def cancel(self, credentials: Credentials, task_id: str) -> Task: ...

    def watch(self, credentials: Credentials, task_id: str, after_sequence: int) -> AsyncIterator[TaskEvent]:
        """The task's events after ``after_sequence`` until it ends or asks a question."""
        ...

    async def tools(self, credentials: Credentials) -> list[ToolSpec]:
        """The tool catalogue, every page, as the caller may list it."""
        ...


def a2a_error(error: grpc.aio.AioRpcError) -> A2AError:
    """The A2A error for a failed gateway call. The gateway's reason and status travel in the
    error's data (``ErrorInfo.metadata`` in A2A's error details)."""
    details = details_of(error)
    data: dict[str, object] = {"status": details.code.name, "reason": details.reason, **details.metadata}
    if details.field_violations:
        data["errors"] = [{"field": f, "message": d} for f, d in details.field_violations]
    if details.retry_delay_s is not None:
        data["retryAfterSeconds"] = details.retry_delay_s
    message = details.message
    match details.code:
        case grpc.StatusCode.NOT_FOUND:
            return TaskNotFoundError(message, data)
        case grpc.StatusCode.INVALID_ARGUMENT | grpc.StatusCode.OUT_OF_RANGE:
            return InvalidParamsError(message, data)
        case grpc.StatusCode.FAILED_PRECONDITION:
            return UnsupportedOperationError(message, data)
        case (
            grpc.StatusCode.UNAUTHENTICATED
            | grpc.StatusCode.PERMISSION_DENIED
            | grpc.StatusCode.RESOURCE_EXHAUSTED
        ):
            # A2A has no error of its own for these: the request cannot be served as it was made.
            return InvalidRequestError(message, data)
        case _:
            return InternalError(message, data)


class GrpcTaskGateway:
    """``TaskGateway`` over the gateway's gRPC API. The channel is opened on first use, inside the
    serving event loop, so the adapter can be built before there is one."""

    def __init__(self, address: str, *, timeout_s: float = 30.0, tls: TlsConfig | None = None) -> None:
        self._address = address
        self._timeout_s = timeout_s
        # The gateway is verified against the CA of ``tls`` (HIVEMESH_TLS_*), as every client does.
        self._tls = tls
        self._channel: grpc.aio.Channel | None = None
        self._stub: GatewayServiceAsyncStub | None = None

    def _gateway(self) -> GatewayServiceAsyncStub:
        if self._stub is None:
            self._channel = (
                grpc.aio.insecure_channel(self._address)
                if self._tls is None
                else grpc.aio.secure_channel(
                    self._address,
                    transport.channel_credentials(self._tls, require_identity=False),
                    options=transport.channel_options(self._tls),
                )
            )
            self._stub = GatewayServiceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close(None)

    async def submit(self, credentials: Credentials, request_id: str, text: str, scope: Scope) -> Task:
        request = pb.SubmitTaskRequest(request_id=request_id, text=text, scope=scope)
        try:
            response: pb.SubmitTaskResponse = await self._gateway().SubmitTask(
                request, timeout=self._timeout_s, metadata=credentials
            )
        except grpc.aio.AioRpcError as exc:
            raise a2a_error(exc) from exc
        return response.task

    async def answer(self, credentials: Credentials, task_id: str, request_id: str, text: str) -> Task:
        request = pb.ContinueTaskRequest(task_id=task_id, request_id=request_id, text=text)
        try:
            response: pb.ContinueTaskResponse = await self._gateway().ContinueTask(
                request, timeout=self._timeout_s, metadata=credentials
            )
        except grpc.aio.AioRpcError as exc:
            raise a2a_error(exc) from exc
        return response.task

    async def get(self, credentials: Credentials, task_id: str) -> Task:
        try:
            response: pb.GetTaskResponse = await self._gateway().GetTask(
                pb.GetTaskRequest(task_id=task_id), timeout=self._timeout_s, metadata=credentials
            )
        except grpc.aio.AioRpcError as exc:
            raise a2a_error(exc) from exc
        return response.task

    async def cancel(self, credentials: Credentials, task_id: str) -> Task:
        request = pb.CancelTaskRequest(task_id=task_id, reason="canceled through A2A")
        try:
            response: pb.CancelTaskResponse = await self._gateway().CancelTask(
                request, timeout=self._timeout_s, metadata=credentials
            )
        except grpc.aio.AioRpcError as exc:
            raise a2a_error(exc) from exc
        return response.task

    async def tools(self, credentials: Credentials) -> list[ToolSpec]:
        specs: list[ToolSpec] = []
        token = ""
        while True:
            try:
                page: pb.ListToolsResponse = await self._gateway().ListTools(
                    pb.ListToolsRequest(page_size=1000, page_token=token),
                    timeout=self._timeout_s,
                    metadata=credentials,
                )
            except grpc.aio.AioRpcError as exc:
                raise a2a_error(exc) from exc
            specs.extend(page.tools)
            token = page.next_page_token
            if not token:
                return specs

    async def watch(
        self, credentials: Credentials, task_id: str, after_sequence: int
    ) -> AsyncIterator[TaskEvent]:
        stream = self._gateway().WatchTask(
            pb.WatchTaskRequest(task_id=task_id, after_sequence=after_sequence), metadata=credentials
        )
        try:
            async for response in stream:
                yield response.event
        except grpc.aio.AioRpcError as exc:
            raise a2a_error(exc) from exc
        finally:
            stream.cancel()
