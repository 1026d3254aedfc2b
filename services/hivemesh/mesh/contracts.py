"""The five service contracts: names, descriptors and idempotency, read from the generated code.

The idempotency level declared in the protos is the single source of truth for which methods may be
retried: the in-process retry policy is derived from it here, and tests check istio/ against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pb2 import MethodOptions

from hivemesh.gateway.v1 import gateway_service_pb2
from hivemesh.language.v1 import language_service_pb2
from hivemesh.memory.v1 import memory_service_pb2
from hivemesh.planner.v1 import planner_service_pb2
from hivemesh.tool.v1 import tool_service_pb2


@dataclass(frozen=True)
class Contract:
    """A service's short name (``gateway``) and its descriptor (``hivemesh.gateway.v1.GatewayService``)."""

    name: str
    descriptor: ServiceDescriptor

    @property
    def full_name(self) -> str:
        return self.descriptor.full_name


CONTRACTS: Final = {
    "gateway": Contract("gateway", gateway_service_pb2.DESCRIPTOR.services_by_name["GatewayService"]),
    "planner": Contract("planner", planner_service_pb2.DESCRIPTOR.services_by_name["PlannerService"]),
    "language": Contract("language", language_service_pb2.DESCRIPTOR.services_by_name["LanguageService"]),
    "memory": Contract("memory", memory_service_pb2.DESCRIPTOR.services_by_name["MemoryService"]),
    "tool": Contract("tool", tool_service_pb2.DESCRIPTOR.services_by_name["ToolService"]),
}


def idempotency(method: MethodDescriptor) -> int:
    options = method.GetOptions()
    assert isinstance(options, MethodOptions)
    return int(options.idempotency_level)


def is_streaming(method: MethodDescriptor) -> bool:
    return bool(method.client_streaming or method.server_streaming)


def retryable_methods(service: ServiceDescriptor) -> list[str]:
    """Names of the unary methods declared IDEMPOTENT or NO_SIDE_EFFECTS: safe to retry when the
    server never saw the call or failed it as UNAVAILABLE. Streams are not retried: a retry could
    replay events the client already received."""
    return sorted(
        m.name
        for m in service.methods
        if not is_streaming(m) and idempotency(m) != MethodOptions.IDEMPOTENCY_UNKNOWN
    )
