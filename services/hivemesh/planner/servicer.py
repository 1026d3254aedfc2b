"""gRPC adapter of the planner."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from hivemesh.planner.service import Planner
from hivemesh.planner.v1 import planner_service_pb2 as pb
from hivemesh.planner.v1 import planner_service_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[object, object]


class PlannerServicer(pb_grpc.PlannerServiceServicer):
    def __init__(self, planner: Planner) -> None:
        self._planner = planner

    async def RunTask(
        self, request: pb.RunTaskRequest, context: Context
    ) -> AsyncIterator[pb.RunTaskResponse]:
        async for event in self._planner.run(request.text, request.scope, request.options, request.task_id):
            yield pb.RunTaskResponse(event=event)

    async def PlanTask(self, request: pb.PlanTaskRequest, context: Context) -> pb.PlanTaskResponse:
        return pb.PlanTaskResponse(plan=await self._planner.plan(request.text, request.scope))
