"""gRPC adapter of the gateway: authenticates, holds a slot of the caller's tenant for the call,
converts messages and calls the domain."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Literal

import grpc

from hivemesh.gateway.auth import Authenticator
from hivemesh.gateway.service import Caller, DeadTask, Gateway, NewTask, TaskFilter, ToolRun
from hivemesh.gateway.tenant_limits import TenantLimits
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.gateway.v1 import gateway_service_pb2_grpc as pb_grpc
from hivemesh.mesh.inputs import timestamp_seconds

Context = grpc.aio.ServicerContext[object, object]


def _instant(
    request: pb.ListTasksRequest | pb.WatchTasksRequest, field: Literal["created_after", "created_before"]
) -> float | None:
    """Seconds since the epoch of ``field``, None when unset."""
    return timestamp_seconds(getattr(request, field), field) if request.HasField(field) else None


def _filter(request: pb.ListTasksRequest | pb.WatchTasksRequest) -> TaskFilter:
    return TaskFilter(
        user_id=request.user_id,
        states=list(request.states),
        created_after=_instant(request, "created_after"),
        created_before=_instant(request, "created_before"),
        page_size=request.page_size,
        tenant_id=request.tenant_id,
    )


def _dead_letter(found: DeadTask) -> pb.DeadLetter:
    return pb.DeadLetter(
        task=found.task, delivery_count=found.letter.delivery_count, last_error=found.letter.last_error
    )


class GatewayServicer(pb_grpc.GatewayServiceServicer):
    def __init__(self, gateway: Gateway, auth: Authenticator, limits: TenantLimits) -> None:
        self._gateway = gateway
        self._auth = auth
        self._limits = limits

    @contextlib.asynccontextmanager
    async def _caller(self, context: Context, *, stream: bool = False) -> AsyncIterator[Caller]:
        """The authenticated caller, holding a slot of its tenant until the call ends."""
        metadata = {str(k).lower(): v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        caller = await self._auth.caller(metadata, context.peer())
        with self._limits.hold(caller, stream=stream):
            yield caller

    async def SubmitTask(self, request: pb.SubmitTaskRequest, context: Context) -> pb.SubmitTaskResponse:
        async with self._caller(context) as caller:
            task, existing = await self._gateway.submit(
                caller, NewTask(request.request_id, request.text, request.scope, request.options)
            )
        return pb.SubmitTaskResponse(task=task, existing=existing)

    async def ExecuteTask(
        self, request: pb.ExecuteTaskRequest, context: Context
    ) -> AsyncIterator[pb.ExecuteTaskResponse]:
        async with self._caller(context, stream=True) as caller:
            task, _ = await self._gateway.submit(
                caller, NewTask(request.request_id, request.text, request.scope, request.options)
            )
            async for event in self._gateway.follow_submitted(task):
                yield pb.ExecuteTaskResponse(event=event)

    async def GetTask(self, request: pb.GetTaskRequest, context: Context) -> pb.GetTaskResponse:
        async with self._caller(context) as caller:
            return pb.GetTaskResponse(task=await self._gateway.get(caller, request.task_id))

    async def ListTasks(self, request: pb.ListTasksRequest, context: Context) -> pb.ListTasksResponse:
        async with self._caller(context) as caller:
            tasks, token = await self._gateway.list(caller, _filter(request), request.page_token)
        return pb.ListTasksResponse(tasks=tasks, next_page_token=token)

    async def WatchTasks(
        self, request: pb.WatchTasksRequest, context: Context
    ) -> AsyncIterator[pb.WatchTasksResponse]:
        async with self._caller(context, stream=True) as caller:
            async for tasks in self._gateway.watch_tasks(caller, _filter(request)):
                yield pb.WatchTasksResponse(tasks=tasks)

    async def CancelTask(self, request: pb.CancelTaskRequest, context: Context) -> pb.CancelTaskResponse:
        async with self._caller(context) as caller:
            task = await self._gateway.cancel(caller, request.task_id, request.reason)
        return pb.CancelTaskResponse(task=task)

    async def WatchTask(
        self, request: pb.WatchTaskRequest, context: Context
    ) -> AsyncIterator[pb.WatchTaskResponse]:
        async with self._caller(context, stream=True) as caller:
            async for event in self._gateway.watch(caller, request.task_id, request.after_sequence):
                yield pb.WatchTaskResponse(event=event)

    async def ContinueTask(
        self, request: pb.ContinueTaskRequest, context: Context
    ) -> pb.ContinueTaskResponse:
        async with self._caller(context) as caller:
            task = await self._gateway.continue_task(
                caller, request.task_id, request.request_id, request.text
            )
        return pb.ContinueTaskResponse(task=task)

    async def VerifyTask(self, request: pb.VerifyTaskRequest, context: Context) -> pb.VerifyTaskResponse:
        async with self._caller(context) as caller:
            found = await self._gateway.verify(caller, request.task_id)
        return pb.VerifyTaskResponse(
            intact=found.ok, events=found.events, broken_at=found.broken_at or 0, problem=found.problem
        )

    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: Context
    ) -> pb.ListDeadLettersResponse:
        async with self._caller(context) as caller:
            found, token = await self._gateway.dead_letters(
                caller, page_size=request.page_size, page_token=request.page_token
            )
        return pb.ListDeadLettersResponse(
            dead_letters=[_dead_letter(f) for f in found], next_page_token=token
        )

    async def GetDeadLetter(
        self, request: pb.GetDeadLetterRequest, context: Context
    ) -> pb.GetDeadLetterResponse:
        async with self._caller(context) as caller:
            found = await self._gateway.dead_letter(caller, request.task_id)
        return pb.GetDeadLetterResponse(dead_letter=_dead_letter(found))

    async def ReplayDeadLetter(
        self, request: pb.ReplayDeadLetterRequest, context: Context
    ) -> pb.ReplayDeadLetterResponse:
        async with self._caller(context) as caller:
            task = await self._gateway.replay(caller, request.task_id)
        return pb.ReplayDeadLetterResponse(task=task)

    async def PurgeDeadLetters(
        self, request: pb.PurgeDeadLettersRequest, context: Context
    ) -> pb.PurgeDeadLettersResponse:
        target = request.task_id if request.WhichOneof("target") == "task_id" else None
        async with self._caller(context) as caller:
            purged = await self._gateway.purge(caller, target)
        return pb.PurgeDeadLettersResponse(purged_count=purged)

    async def ListTools(self, request: pb.ListToolsRequest, context: Context) -> pb.ListToolsResponse:
        async with self._caller(context) as caller:
            tools, token = await self._gateway.list_tools(
                caller, page_size=request.page_size, page_token=request.page_token
            )
        return pb.ListToolsResponse(tools=tools, next_page_token=token)

    async def InvokeTool(self, request: pb.InvokeToolRequest, context: Context) -> pb.InvokeToolResponse:
        run = ToolRun(request.request_id, request.tool_name, request.arguments, request.scope)
        async with self._caller(context) as caller:
            result = await self._gateway.invoke_tool(caller, run)
        return pb.InvokeToolResponse(result=result.result, display=result.display, replayed=result.replayed)

    async def GetMemoryUsage(
        self, request: pb.GetMemoryUsageRequest, context: Context
    ) -> pb.GetMemoryUsageResponse:
        async with self._caller(context) as caller:
            tenant, usage = await self._gateway.memory_usage(caller, request.tenant_id, request.user_id)
        return pb.GetMemoryUsageResponse(tenant_id=tenant, usage=usage)
