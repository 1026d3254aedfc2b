"""Wiring of the gateway service."""

from __future__ import annotations

from hivemesh.gateway.service import Gateway
from hivemesh.gateway.servicer import GatewayServicer
from hivemesh.gateway.v1 import gateway_service_pb2_grpc as pb_grpc
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import ServiceApp
from hivemesh.tasks.system import TaskSystem


def build(settings: Settings, channels: ChannelFactory, metrics: Metrics) -> ServiceApp:
    tasks = TaskSystem(settings)
    servicer = GatewayServicer(Gateway(tasks, settings))
    return ServiceApp(
        name="gateway",
        register=lambda server: pb_grpc.add_GatewayServiceServicer_to_server(servicer, server),
        components=[tasks],
    )
