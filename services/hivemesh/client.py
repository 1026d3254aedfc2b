"""A typed Python client for the gateway: submit, follow (resuming after disconnects), inspect."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType

import grpc
from google.protobuf.duration_pb2 import Duration

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskOptions
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub

# Codes after which following a task's events again (from the last sequence seen) is safe.
_RESUMABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


def credentials_from_env(env: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Request metadata carrying HIVEMESH_API_KEY or HIVEMESH_TOKEN (a JWT), when set."""
    values = os.environ if env is None else env
    key = values.get("HIVEMESH_API_KEY", "").strip()
    token = values.get("HIVEMESH_TOKEN", "").strip()
    if key:
        return [("x-api-key", key)]
    return [("authorization", f"Bearer {token}")] if token else []


class HivemeshClient:
    """``async with HivemeshClient("localhost:50051") as client: task = await client.submit(...)``."""

    def __init__(
        self, address: str, *, metadata: Sequence[tuple[str, str]] = (), timeout_s: float = 30.0
    ) -> None:
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = GatewayServiceStub(self._channel)
        self._metadata = tuple(metadata)
        self._timeout = timeout_s

    async def __aenter__(self) -> HivemeshClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close(None)

    async def submit(
        self,
        text: str,
        *,
        user_id: str,
        session_id: str,
        tenant_id: str = "",
        deadline_s: float | None = None,
        max_steps: int = 0,
        request_id: str | None = None,
    ) -> tuple[Task, bool]:
        options = TaskOptions(max_steps=max_steps)
        if deadline_s is not None:
            options.deadline.CopyFrom(Duration(seconds=int(deadline_s), nanos=int(deadline_s % 1 * 1e9)))
        request = pb.SubmitTaskRequest(
            request_id=request_id or uuid.uuid4().hex,
            text=text,
            scope=Scope(tenant_id=tenant_id, user_id=user_id, session_id=session_id),
            options=options,
        )
        response: pb.SubmitTaskResponse = await self._stub.SubmitTask(
            request, timeout=self._timeout, metadata=self._metadata, wait_for_ready=True
        )
        return response.task, response.existing

    async def follow(
        self, task_id: str, after_sequence: int = 0, *, patience_s: float = 30.0
    ) -> AsyncIterator[TaskEvent]:
        """Events after ``after_sequence`` until the task ends or asks a question. A dropped stream
        is resumed from the last sequence received, so nothing is missed or repeated."""
        last = after_sequence
        waited = 0.0
        while True:
            try:
                stream = self._stub.WatchTask(
                    pb.WatchTaskRequest(task_id=task_id, after_sequence=last), metadata=self._metadata
                )
                async for response in stream:
                    waited = 0.0
                    last = response.event.sequence
                    yield response.event
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in _RESUMABLE or waited >= patience_s:
                    raise
                delay = min(2.0, 0.1 + waited / 4)
                await asyncio.sleep(delay)
                waited += delay

    async def get(self, task_id: str) -> Task:
        response: pb.GetTaskResponse = await self._stub.GetTask(
            pb.GetTaskRequest(task_id=task_id), timeout=self._timeout, metadata=self._metadata
        )
        return response.task

    async def list(
        self, *, page_size: int = 50, page_token: str = "", user_id: str = ""
    ) -> tuple[list[Task], str]:
        response: pb.ListTasksResponse = await self._stub.ListTasks(
            pb.ListTasksRequest(page_size=page_size, page_token=page_token, user_id=user_id),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return list(response.tasks), response.next_page_token

    async def cancel(self, task_id: str, reason: str = "") -> Task:
        response: pb.CancelTaskResponse = await self._stub.CancelTask(
            pb.CancelTaskRequest(task_id=task_id, reason=reason),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return response.task

    async def answer(self, task_id: str, text: str, *, request_id: str | None = None) -> Task:
        """Answer the question of a task in INPUT_REQUIRED; it is queued again."""
        response: pb.ContinueTaskResponse = await self._stub.ContinueTask(
            pb.ContinueTaskRequest(task_id=task_id, text=text, request_id=request_id or uuid.uuid4().hex),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return response.task
