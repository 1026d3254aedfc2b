"""The gateway's gRPC adapter of ToolService, for tools called directly (``Gateway.invoke_tool``).
The credential each call acts with is attached by the client interceptors; a failed call becomes
the domain error it stands for, its code and reason kept."""

from __future__ import annotations

from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.status import domain_errors
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub


class GrpcTools:
    def __init__(self, channels: ChannelFactory) -> None:
        self._stub = ToolServiceStub(channels.channel("tool"))

    async def list_tools(self, page_size: int, page_token: str) -> tool.ListToolsResponse:
        request = tool.ListToolsRequest(page_size=page_size, page_token=page_token)
        with domain_errors():
            response: tool.ListToolsResponse = await self._stub.ListTools(request)
        return response

    async def invoke(self, request: tool.InvokeToolRequest) -> tool.InvokeToolResponse:
        with domain_errors():
            response: tool.InvokeToolResponse = await self._stub.InvokeTool(request)
        return response
