"""``grpc.health.v1`` for every hivemesh server.

Besides the status of each health name (``""``, ``liveness``, ``readiness``, the service's full
name), every answer of Check and Watch carries the service's runtime as response headers
(``release.runtime_headers``: the language service's device, models and batch capacity), so a probe
or ``grpcurl -v`` sees what a replica computes on without another call. Watch is an async generator,
as the server interceptors expect of every streaming handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

Headers = tuple[tuple[str, str], ...]
_Status = health_pb2.HealthCheckResponse
_UNKNOWN: int = _Status.SERVICE_UNKNOWN


class Health(health_pb2_grpc.HealthServicer):  # type: ignore[misc] # grpc_health ships no type hints
    def __init__(self, headers: Callable[[], Headers]) -> None:
        self._headers = headers
        self._statuses: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._shutting_down = False

    async def set(self, name: str, status: int) -> None:
        """Set the status of ``name``; ignored once shutting down (everything stays NOT_SERVING)."""
        if not self._shutting_down:
            await self._update(name, status)

    async def enter_graceful_shutdown(self) -> None:
        """Every name NOT_SERVING for good."""
        self._shutting_down = True
        for name in list(self._statuses):
            await self._update(name, _Status.NOT_SERVING)

    async def Check(  # noqa: N802 - the RPC's name
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> health_pb2.HealthCheckResponse:
        await self._send_headers(context)
        status = self._statuses.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no health status for {request.service!r}")
        return _Status(status=status)

    async def Watch(  # noqa: N802 - the RPC's name
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        await self._send_headers(context)
        sent: int | None = None
        while True:
            status = self._status_of(request.service)
            if status != sent:
                sent = status
                yield _Status(status=status)
            await self._until_changed(request.service, status)

    def _status_of(self, name: str) -> int:
        return self._statuses.get(name, _UNKNOWN)

    async def _until_changed(self, name: str, status: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._status_of(name) != status)

    async def _update(self, name: str, status: int) -> None:
        async with self._changed:
            self._statuses[name] = status
            self._changed.notify_all()

    async def _send_headers(self, context: grpc.aio.ServicerContext[object, object]) -> None:
        headers = self._headers()
        if headers:
            await context.send_initial_metadata(headers)
