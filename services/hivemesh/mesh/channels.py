"""One long-lived channel per downstream service, with keepalive matching the servers and
in-process retries (gRPC service config) on UNAVAILABLE for exactly the idempotent methods."""

from __future__ import annotations

import json
from collections.abc import Mapping

import grpc

from hivemesh.mesh.config import Settings
from hivemesh.mesh.contracts import CONTRACTS, retryable_methods
from hivemesh.mesh.interceptors import client_interceptors


def service_config(service: str, *, retries: bool) -> str:
    """The gRPC service config JSON for calls to ``service``."""
    contract = CONTRACTS[service]
    method_config: list[dict[str, object]] = []
    methods = retryable_methods(contract.descriptor)
    if retries and methods:
        method_config.append(
            {
                "name": [{"service": contract.full_name, "method": m} for m in methods],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        )
    # A retry budget: if more than 10% of calls are retried, retries stop instead of amplifying load.
    config: dict[str, object] = {"methodConfig": method_config}
    if retries:
        config["retryThrottling"] = {"maxTokens": 10, "tokenRatio": 0.1}
    return json.dumps(config)


def channel_options(settings: Settings, service: str) -> list[tuple[str, object]]:
    keepalive = settings.server.keepalive
    return [
        ("grpc.keepalive_time_ms", int(keepalive.time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(keepalive.timeout_s * 1000)),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.max_receive_message_length", settings.server.max_message_bytes),
        ("grpc.max_send_message_length", settings.server.max_message_bytes),
        ("grpc.enable_retries", 0 if settings.in_mesh else 1),
        ("grpc.service_config", service_config(service, retries=not settings.in_mesh)),
    ]


class ChannelFactory:
    """Creates each downstream channel once and closes them all on shutdown."""

    def __init__(self, settings: Settings, addresses: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._addresses = dict(addresses or settings.addresses)
        self._channels: dict[str, grpc.aio.Channel] = {}

    def set_address(self, service: str, address: str) -> None:
        """Point ``service`` elsewhere (a server that bound port 0); only before its first use."""
        if service in self._channels:
            raise RuntimeError(f"the channel to {service} is already open")
        self._addresses[service] = address

    def channel(self, service: str) -> grpc.aio.Channel:
        existing = self._channels.get(service)
        if existing is not None:
            return existing
        created = grpc.aio.insecure_channel(
            self._addresses[service],
            options=channel_options(self._settings, service),
            interceptors=client_interceptors(
                self._settings.default_call_timeout_s, self._settings.deadline_margin_s
            ),
        )
        self._channels[service] = created
        return created

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close(None)
