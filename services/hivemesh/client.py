"""A typed Python client for the gateway: submit, execute and follow (resuming after disconnects),
inspect."""

from __future__ import annotations

import asyncio
import builtins
import copy
import os
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import CanarySide, Task, TaskEvent, TaskOptions, TaskState
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh import tls as transport
from hivemesh.mesh.client_tracing import trace_interceptors
from hivemesh.mesh.config import TlsConfig
from hivemesh.mesh.sides import NAMED_SIDES, SIDE_HEADER
from hivemesh.tool.v1.tool_service_pb2 import ToolSpec

# Codes after which following a task's events again (from the last sequence seen) is safe.
# Codes after which a stream is picked up again. CANCELLED reaches a client as an error only when
# the server cancelled the call (a gateway stopping with streams its grace period did not see end);
# the client's own cancellation raises asyncio.CancelledError instead.
_RESUMABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}
# How the gateway's API keys begin (``hmk_<key id>_<secret>``, see hivemesh.gateway.keys).
API_KEY_PREFIX = "hmk_"


def credentials_from_env(env: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Request metadata carrying HIVEMESH_API_KEY or HIVEMESH_TOKEN (a JWT), when set."""
    values = os.environ if env is None else env
    key = values.get("HIVEMESH_API_KEY", "").strip()
    token = values.get("HIVEMESH_TOKEN", "").strip()
    if key:
        return [("x-api-key", key)]
    return [("authorization", f"Bearer {token}")] if token else []


def bearer_credentials(token: str) -> list[tuple[str, str]]:
    """Request metadata for a credential given as an HTTP bearer token: an API key (``hmk_...``)
    travels as ``x-api-key``, anything else (a JWT) as ``authorization: Bearer``; none when empty."""
    token = token.strip()
    if not token:
        return []
    if token.startswith(API_KEY_PREFIX):
        return [("x-api-key", token)]
    return [("authorization", f"Bearer {token}")]


class AnswerJoiner:
    """Joins a task's ``answer_delta`` texts, in the order they are watched, into the answer of its
    current attempt (``TaskEvent.attempt``). A task taken over after its worker died, or retried,
    runs again from the start: when its next attempt appears, the text of the earlier one is
    dropped, and so is any late delta of a superseded attempt. Once the task has COMPLETED,
    ``text.strip()`` is its answer."""

    def __init__(self) -> None:
        self.attempt = 0
        self._chunks: list[str] = []

    @property
    def text(self) -> str:
        """The current attempt's answer so far."""
        return "".join(self._chunks)

    def add(self, event: TaskEvent) -> str:
        """Take the next event; returns the text it discarded ("" when none): what an earlier
        attempt had generated, when ``event`` is the first of a later one."""
        attempt = event.attempt
        if not attempt and _starts_run(event):
            # Logged before events were numbered: each WORKING change starts the next attempt.
            attempt = self.attempt + 1
        discarded = ""
        if attempt > self.attempt:
            discarded = self.text
            self._chunks = []
            self.attempt = attempt
        if event.WhichOneof("kind") == "answer_delta" and attempt in (0, self.attempt):
            self._chunks.append(event.answer_delta.text)
        return discarded


def _starts_run(event: TaskEvent) -> bool:
    return (
        event.WhichOneof("kind") == "state_changed"
        and event.state_changed.state == TaskState.TASK_STATE_WORKING
    )


class HivemeshClient:
    """``async with HivemeshClient("localhost:50051") as client: task = await client.submit(...)``.

    With ``tls`` the gateway is verified against its CA, and the client certificate is shown when
    the config has one (the gateway asks for none). With ``wait_for_ready`` (the default) a call
    made while the gateway cannot be reached waits for it until the call's deadline; without, it
    fails at once with UNAVAILABLE (a front end that must answer its own callers quickly).

    ``for_caller`` gives a client that shares this one's channel and sends other credentials: one
    channel serves every caller of a front end. Clients in one process share one connection to an
    address; ``own_connection`` gives this one a connection of its own, as a client in another
    process has (gateway replicas behind one address each serve whole connections). With
    ``carry_trace`` every call continues the current OpenTelemetry trace (and is a CLIENT span of
    it when the process records spans)."""

    def __init__(
        self,
        address: str,
        *,
        metadata: Sequence[tuple[str, str]] = (),
        timeout_s: float = 30.0,
        tls: TlsConfig | None = None,
        wait_for_ready: bool = True,
        own_connection: bool = False,
        carry_trace: bool = False,
    ) -> None:
        options: list[tuple[str, object]] = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
        interceptors = trace_interceptors() if carry_trace else None
        self._channel = (
            grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
            if tls is None
            else grpc.aio.secure_channel(
                address,
                transport.channel_credentials(tls, require_identity=False),
                options=[*options, *transport.channel_options(tls)],
                interceptors=interceptors,
            )
        )
        self._stub = GatewayServiceStub(self._channel)
        self._metadata = tuple(metadata)
        self._timeout = timeout_s
        self._wait_for_ready = wait_for_ready
        self._owns_channel = True

    def for_caller(self, metadata: Sequence[tuple[str, str]]) -> HivemeshClient:
        """A client on this one's channel that sends ``metadata`` (a caller's credentials) instead;
        closing it leaves the channel open."""
        view = copy.copy(self)
        view._metadata = tuple(metadata)
        view._owns_channel = False
        return view

    async def __aenter__(self) -> HivemeshClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close(None)

    async def ready(self, timeout_s: float) -> None:
        """Wait until the channel to the gateway is connected; TimeoutError after ``timeout_s``."""
        await asyncio.wait_for(self._channel.channel_ready(), timeout_s)

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
        side: CanarySide.ValueType = CanarySide.CANARY_SIDE_UNSPECIFIED,
        time_zone: str = "",
    ) -> tuple[Task, bool]:
        """Submit a task; ``time_zone`` (IANA name) is the user's, remembered for their next tasks."""
        request = pb.SubmitTaskRequest(
            request_id=request_id or uuid.uuid4().hex,
            text=text,
            scope=Scope(tenant_id=tenant_id, user_id=user_id, session_id=session_id, time_zone=time_zone),
            options=_options(deadline_s, max_steps, side),
        )
        response: pb.SubmitTaskResponse = await self._stub.SubmitTask(
            request,
            timeout=self._timeout,
            metadata=_on_side(self._metadata, side),
            wait_for_ready=self._wait_for_ready,
        )
        return response.task, response.existing

    async def execute(
        self,
        text: str,
        *,
        user_id: str,
        session_id: str,
        tenant_id: str = "",
        deadline_s: float | None = None,
        max_steps: int = 0,
        request_id: str | None = None,
        timeout_s: float | None = None,
        patience_s: float = 30.0,
        side: CanarySide.ValueType = CanarySide.CANARY_SIDE_UNSPECIFIED,
        time_zone: str = "",
    ) -> AsyncIterator[TaskEvent]:
        """Submit a task and yield its events until it ends or asks a question, in one call
        (ExecuteTask). ``timeout_s`` bounds the whole stream (None: no bound).

        A stream that drops with a resumable code is picked up again for up to ``patience_s``:
        before its first event by executing again with the same request id (the gateway answers
        with the task already submitted and replays it from the start), after it by following the
        task from the last sequence received. ``patience_s=0`` raises the first error instead.
        ``time_zone`` (IANA name) is the user's, remembered for their next tasks."""
        request = pb.ExecuteTaskRequest(
            request_id=request_id or uuid.uuid4().hex,
            text=text,
            scope=Scope(tenant_id=tenant_id, user_id=user_id, session_id=session_id, time_zone=time_zone),
            options=_options(deadline_s, max_steps, side),
        )
        ends = None if timeout_s is None else time.monotonic() + timeout_s
        task_id = ""
        last = 0
        waited = 0.0
        while not task_id:
            try:
                stream = self._stub.ExecuteTask(
                    request,
                    timeout=_remaining(ends),
                    metadata=_on_side(self._metadata, side),
                    wait_for_ready=self._wait_for_ready,
                )
                async for response in stream:
                    task_id = response.event.task_id
                    last = response.event.sequence
                    yield response.event
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in _RESUMABLE or waited >= patience_s:
                    raise
                delay = min(2.0, 0.1 + waited / 4)
                await asyncio.sleep(delay)
                waited += delay
        async for event in self.follow(task_id, last, patience_s=patience_s, timeout_s=_remaining(ends)):
            yield event

    async def follow(
        self,
        task_id: str,
        after_sequence: int = 0,
        *,
        patience_s: float = 30.0,
        timeout_s: float | None = None,
    ) -> AsyncIterator[TaskEvent]:
        """Events after ``after_sequence`` until the task ends or asks a question. A dropped stream
        is resumed from the last sequence received, so nothing is missed or repeated.
        ``timeout_s`` bounds the whole follow (None: no bound)."""
        ends = None if timeout_s is None else time.monotonic() + timeout_s
        last = after_sequence
        waited = 0.0
        while True:
            try:
                stream = self._stub.WatchTask(
                    pb.WatchTaskRequest(task_id=task_id, after_sequence=last),
                    timeout=_remaining(ends),
                    metadata=self._metadata,
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
        self,
        *,
        page_size: int = 50,
        page_token: str = "",
        user_id: str = "",
        states: Iterable[TaskState.ValueType] = (),
        created_after: Timestamp | None = None,
        created_before: Timestamp | None = None,
        tenant_id: str = "",
    ) -> tuple[list[Task], str]:
        response: pb.ListTasksResponse = await self._stub.ListTasks(
            pb.ListTasksRequest(
                page_size=page_size,
                page_token=page_token,
                user_id=user_id,
                states=list(states),
                created_after=created_after,
                created_before=created_before,
                tenant_id=tenant_id,
            ),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return list(response.tasks), response.next_page_token

    async def watch_tasks(
        self,
        *,
        page_size: int = 50,
        user_id: str = "",
        states: Iterable[TaskState.ValueType] = (),
        created_after: Timestamp | None = None,
        created_before: Timestamp | None = None,
        tenant_id: str = "",
    ) -> AsyncGenerator[builtins.list[Task], None]:
        """The newest page of tasks (``list``'s filters), at once and again whenever it changes,
        until the caller stops reading (no deadline: the watch lasts as long as it is wanted)."""
        call = self._stub.WatchTasks(
            pb.WatchTasksRequest(
                page_size=page_size,
                user_id=user_id,
                states=list(states),
                created_after=created_after,
                created_before=created_before,
                tenant_id=tenant_id,
            ),
            metadata=self._metadata,
        )
        try:
            async for response in call:
                yield builtins.list(response.tasks)
        finally:
            call.cancel()

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

    async def verify(self, task_id: str) -> pb.VerifyTaskResponse:
        """Check the hash chain of a task's event log (the gateway's VerifyTask)."""
        response: pb.VerifyTaskResponse = await self._stub.VerifyTask(
            pb.VerifyTaskRequest(task_id=task_id), timeout=self._timeout, metadata=self._metadata
        )
        return response

    async def dead_letters(
        self, *, page_size: int = 50, page_token: str = ""
    ) -> tuple[builtins.list[pb.DeadLetter], str]:
        """One page of the caller's dead letters, oldest first, and the next page's token."""
        response: pb.ListDeadLettersResponse = await self._stub.ListDeadLetters(
            pb.ListDeadLettersRequest(page_size=page_size, page_token=page_token),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return list(response.dead_letters), response.next_page_token

    async def dead_letter(self, task_id: str) -> pb.DeadLetter:
        response: pb.GetDeadLetterResponse = await self._stub.GetDeadLetter(
            pb.GetDeadLetterRequest(task_id=task_id), timeout=self._timeout, metadata=self._metadata
        )
        return response.dead_letter

    async def replay_dead_letter(self, task_id: str, *, request_id: str | None = None) -> Task:
        """Put a dead letter back on the queue; the task, SUBMITTED again."""
        response: pb.ReplayDeadLetterResponse = await self._stub.ReplayDeadLetter(
            pb.ReplayDeadLetterRequest(task_id=task_id, request_id=request_id or uuid.uuid4().hex),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return response.task

    async def purge_dead_letters(self, task_id: str | None = None, *, request_id: str | None = None) -> int:
        """Drop one dead letter (``task_id``), or all of the caller's (None); how many went."""
        request = pb.PurgeDeadLettersRequest(request_id=request_id or uuid.uuid4().hex)
        if task_id is None:
            request.all = True
        else:
            request.task_id = task_id
        response: pb.PurgeDeadLettersResponse = await self._stub.PurgeDeadLetters(
            request, timeout=self._timeout, metadata=self._metadata
        )
        return response.purged_count

    async def list_tools(self) -> builtins.list[ToolSpec]:
        """Every tool the agent can use, with its JSON Schemas (all pages of ListTools)."""
        tools: builtins.list[ToolSpec] = []
        token = ""
        while True:
            response: pb.ListToolsResponse = await self._stub.ListTools(
                pb.ListToolsRequest(page_size=1000, page_token=token),
                timeout=self._timeout,
                metadata=self._metadata,
            )
            tools.extend(response.tools)
            token = response.next_page_token
            if not token:
                return tools

    async def memory_usage(self, *, tenant_id: str = "", user_id: str = "") -> pb.GetMemoryUsageResponse:
        """What memory holds for the caller's tenant (``tenant_id`` another one, without
        authentication) or one user of it, layer by layer: counts only."""
        response: pb.GetMemoryUsageResponse = await self._stub.GetMemoryUsage(
            pb.GetMemoryUsageRequest(tenant_id=tenant_id, user_id=user_id),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return response

    async def invoke_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        user_id: str,
        tenant_id: str = "",
        request_id: str | None = None,
    ) -> pb.InvokeToolResponse:
        """Run one tool for ``user_id`` outside any task (the gateway's InvokeTool); the request id
        is its idempotency key."""
        args = Struct()
        json_format.ParseDict(dict(arguments), args)
        response: pb.InvokeToolResponse = await self._stub.InvokeTool(
            pb.InvokeToolRequest(
                request_id=request_id or uuid.uuid4().hex,
                tool_name=name,
                arguments=args,
                scope=Scope(tenant_id=tenant_id, user_id=user_id),
            ),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return response

    async def serving(self, service: str = "readiness", *, timeout_s: float = 2.0) -> bool:
        """Whether the gateway answers SERVING for ``service`` in its health check."""
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.aio.AioRpcError:
            return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def _on_side(
    metadata: tuple[tuple[str, str], ...], side: CanarySide.ValueType
) -> tuple[tuple[str, str], ...]:
    """``metadata``, and for a task that names its side the header that takes the call to that
    side's gateway inside a mesh (hivemesh.mesh.sides), as the task goes to that side of the rest."""
    named = NAMED_SIDES.get(side)
    return metadata if named is None else (*metadata, (SIDE_HEADER, named))


def _options(deadline_s: float | None, max_steps: int, side: CanarySide.ValueType) -> TaskOptions:
    options = TaskOptions(max_steps=max_steps, side=side)
    if deadline_s is not None:
        options.deadline.CopyFrom(Duration(seconds=int(deadline_s), nanos=int(deadline_s % 1 * 1e9)))
    return options


def _remaining(ends: float | None) -> float | None:
    """Seconds left until the monotonic time ``ends`` (None: no bound)."""
    return None if ends is None else max(0.0, ends - time.monotonic())
