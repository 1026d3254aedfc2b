"""gRPC adapter of the gateway: converts messages and calls the domain."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from hivemesh.gateway.service import Caller, Gateway, NewTask
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.gateway.v1 import gateway_service_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[object, object]


def _caller(context: Context) -> Caller:
    # Authentication is not configured here: every caller acts as the tenant it names.
    return Caller(tenant_id=None)


class GatewayServicer(pb_grpc.GatewayServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def SubmitTask(self, request: pb.SubmitTaskRequest, context: Context) -> pb.SubmitTaskResponse:
        task, existing = await self._gateway.submit(
            _caller(context), NewTask(request.request_id, request.text, request.scope, request.options)
        )
        return pb.SubmitTaskResponse(task=task, existing=existing)

    async def ExecuteTask(
        self, request: pb.ExecuteTaskRequest, context: Context
    ) -> AsyncIterator[pb.ExecuteTaskResponse]:
        caller = _caller(context)
        task, _ = await self._gateway.submit(
            caller, NewTask(request.request_id, request.text, request.scope, request.options)
        )
        async for event in self._gateway.watch(caller, task.task_id, 0):
            yield pb.ExecuteTaskResponse(event=event)

    async def GetTask(self, request: pb.GetTaskRequest, context: Context) -> pb.GetTaskResponse:
        return pb.GetTaskResponse(task=await self._gateway.get(_caller(context), request.task_id))

    async def ListTasks(self, request: pb.ListTasksRequest, context: Context) -> pb.ListTasksResponse:
        tasks, token = await self._gateway.list(
            _caller(context),
            user_id=request.user_id,
            states=list(request.states),
            created_after=request.created_after.ToNanoseconds() / 1e9
            if request.HasField("created_after")
            else None,
            created_before=request.created_before.ToNanoseconds() / 1e9
            if request.HasField("created_before")
            else None,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListTasksResponse(tasks=tasks, next_page_token=token)

    async def CancelTask(self, request: pb.CancelTaskRequest, context: Context) -> pb.CancelTaskResponse:
        return pb.CancelTaskResponse(
            task=await self._gateway.cancel(_caller(context), request.task_id, request.reason)
        )

    async def WatchTask(
        self, request: pb.WatchTaskRequest, context: Context
    ) -> AsyncIterator[pb.WatchTaskResponse]:
        async for event in self._gateway.watch(_caller(context), request.task_id, request.after_sequence):
            yield pb.WatchTaskResponse(event=event)

    async def ContinueTask(
        self, request: pb.ContinueTaskRequest, context: Context
    ) -> pb.ContinueTaskResponse:
        task = await self._gateway.continue_task(
            _caller(context), request.task_id, request.request_id, request.text
        )
        return pb.ContinueTaskResponse(task=task)
