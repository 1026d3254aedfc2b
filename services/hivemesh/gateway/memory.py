"""The gateway's gRPC adapter of MemoryService, for the counts of a tenant's memory
(``Gateway.memory_usage``). The credential each call acts with is attached by the client
interceptors; a failed call becomes the domain error it stands for, its code and reason kept."""

from __future__ import annotations

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.memory.v1 import memory_service_pb2 as memory
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.status import domain_errors


class GrpcMemory:
    def __init__(self, channels: ChannelFactory) -> None:
        self._stub = MemoryServiceStub(channels.channel("memory"))

    async def count(self, tenant_id: str, user_id: str) -> memory.MemoryUsage:
        request = memory.CountMemoryRequest(scope=Scope(tenant_id=tenant_id, user_id=user_id))
        with domain_errors():
            response: memory.CountMemoryResponse = await self._stub.CountMemory(request)
        return response.usage
