"""gRPC adapter of the gateway: authenticates, converts messages and calls the domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import grpc

from hivemesh.gateway.auth import Authenticator
from hivemesh.gateway.service import Caller, DeadTask, Gateway, NewTask
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.gateway.v1 import gateway_service_pb2_grpc as pb_grpc
from hivemesh.mesh.inputs import timestamp_seconds

Context = grpc.aio.ServicerContext[object, object]


def _instant(request: pb.ListTasksRequest, field: Literal["created_after", "created_before"]) -> float | None:
    """Seconds since the epoch of ``field``, None when unset."""
    return timestamp_seconds(getattr(request, field), field) if request.HasField(field) else None


def _dead_letter(found: DeadTask) -> pb.DeadLetter:
    return pb.DeadLetter(
        task=found.task, delivery_count=found.letter.delivery_count, last_error=found.letter.last_error
    )


class GatewayServicer(pb_grpc.GatewayServiceServicer):
    def __init__(self, gateway: Gateway, auth: Authenticator) -> None:
        self._gateway = gateway
        self._auth = auth

    async def _caller(self, context: Context) -> Caller:
        metadata = {str(k).lower(): v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        return await self._auth.caller(metadata)

    async def SubmitTask(self, request: pb.SubmitTaskRequest, context: Context) -> pb.SubmitTaskResponse:
        task, existing = await self._gateway.submit(
            await self._caller(context),
            NewTask(request.request_id, request.text, request.scope, request.options),
        )
        return pb.SubmitTaskResponse(task=task, existing=existing)

    async def ExecuteTask(
        self, request: pb.ExecuteTaskRequest, context: Context
    ) -> AsyncIterator[pb.ExecuteTaskResponse]:
        caller = await self._caller(context)
        task, _ = await self._gateway.submit(
            caller, NewTask(request.request_id, request.text, request.scope, request.options)
        )
        async for event in self._gateway.follow_submitted(task):
            yield pb.ExecuteTaskResponse(event=event)

    async def GetTask(self, request: pb.GetTaskRequest, context: Context) -> pb.GetTaskResponse:
        return pb.GetTaskResponse(task=await self._gateway.get(await self._caller(context), request.task_id))

    async def ListTasks(self, request: pb.ListTasksRequest, context: Context) -> pb.ListTasksResponse:
        tasks, token = await self._gateway.list(
            await self._caller(context),
            user_id=request.user_id,
            states=list(request.states),
            created_after=_instant(request, "created_after"),
            created_before=_instant(request, "created_before"),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListTasksResponse(tasks=tasks, next_page_token=token)

    async def CancelTask(self, request: pb.CancelTaskRequest, context: Context) -> pb.CancelTaskResponse:
        task = await self._gateway.cancel(await self._caller(context), request.task_id, request.reason)
        return pb.CancelTaskResponse(task=task)

    async def WatchTask(
        self, request: pb.WatchTaskRequest, context: Context
    ) -> AsyncIterator[pb.WatchTaskResponse]:
        caller = await self._caller(context)
        async for event in self._gateway.watch(caller, request.task_id, request.after_sequence):
            yield pb.WatchTaskResponse(event=event)

    async def ContinueTask(
        self, request: pb.ContinueTaskRequest, context: Context
    ) -> pb.ContinueTaskResponse:
        task = await self._gateway.continue_task(
            await self._caller(context), request.task_id, request.request_id, request.text
        )
        return pb.ContinueTaskResponse(task=task)

    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: Context
    ) -> pb.ListDeadLettersResponse:
        found, token = await self._gateway.dead_letters(
            await self._caller(context), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListDeadLettersResponse(
            dead_letters=[_dead_letter(f) for f in found], next_page_token=token
        )

    async def GetDeadLetter(
        self, request: pb.GetDeadLetterRequest, context: Context
    ) -> pb.GetDeadLetterResponse:
        found = await self._gateway.dead_letter(await self._caller(context), request.task_id)
        return pb.GetDeadLetterResponse(dead_letter=_dead_letter(found))

    async def ReplayDeadLetter(
        self, request: pb.ReplayDeadLetterRequest, context: Context
    ) -> pb.ReplayDeadLetterResponse:
        task = await self._gateway.replay(await self._caller(context), request.task_id)
        return pb.ReplayDeadLetterResponse(task=task)

    async def PurgeDeadLetters(
        self, request: pb.PurgeDeadLettersRequest, context: Context
    ) -> pb.PurgeDeadLettersResponse:
        target = request.task_id if request.WhichOneof("target") == "task_id" else None
        purged = await self._gateway.purge(await self._caller(context), target)
        return pb.PurgeDeadLettersResponse(purged_count=purged)
