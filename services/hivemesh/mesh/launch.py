"""Builds services by name: the one place that knows which package implements which service."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol

from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import SERVICES, Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer, ServiceApp


class AppBuilder(Protocol):
    def __call__(self, settings: Settings, channels: ChannelFactory, metrics: Metrics) -> ServiceApp: ...


def builder(service: str) -> AppBuilder:
    """``hivemesh.<service>.app.build``: each service package exposes one."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"hivemesh.{service}.app")
    build: AppBuilder = module.build
    return build


def build_servers(
    services: Sequence[str], settings: Settings, channels: ChannelFactory, metrics: Metrics
) -> list[MeshServer]:
    return [
        MeshServer(builder(name)(settings, channels, metrics), settings.server, settings.ports[name], metrics)
        for name in services
    ]
