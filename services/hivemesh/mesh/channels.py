"""One long-lived channel per downstream service, with keepalive matching the servers and
in-process retries (gRPC service config) on UNAVAILABLE for exactly the idempotent methods.

A service served by this same process (``serve_locally``) is reached through a ``LocalChannel``
instead: the same stubs, contracts and interceptors, without HTTP/2 and loopback. With
``HIVEMESH_TLS_*`` set, channels to other processes use TLS and show this service's certificate."""

from __future__ import annotations

import json
from collections.abc import Mapping

import grpc

from hivemesh.mesh import tls as transport
from hivemesh.mesh.config import Settings
from hivemesh.mesh.contracts import CONTRACTS, Contract, retryable_methods
from hivemesh.mesh.interceptors import client_interceptors
from hivemesh.mesh.local_channel import LocalChannel
from hivemesh.mesh.local_endpoint import LocalEndpoint
from hivemesh.mesh.retries import RETRY_POLICY


def service_config(service: str, *, retries: bool) -> str:
    """The gRPC service config JSON for calls to ``service``."""
    contract = CONTRACTS[service]
    policy = RETRY_POLICY
    method_config: list[dict[str, object]] = []
    methods = retryable_methods(contract.descriptor)
    if retries and methods:
        method_config.append(
            {
                "name": [{"service": contract.full_name, "method": m} for m in methods],
                "retryPolicy": {
                    "maxAttempts": policy.max_attempts,
                    "initialBackoff": _duration(policy.initial_backoff_s),
                    "maxBackoff": _duration(policy.max_backoff_s),
                    "backoffMultiplier": policy.backoff_multiplier,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        )
    config: dict[str, object] = {"methodConfig": method_config}
    if retries:
        config["retryThrottling"] = {"maxTokens": policy.max_tokens, "tokenRatio": policy.token_ratio}
    return json.dumps(config)


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


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
        *([] if settings.tls is None else transport.channel_options(settings.tls)),
    ]


def carried_in_process(contract: Contract) -> bool:
    """Whether in-process calls can carry every method of ``contract`` (unary and server streaming)."""
    return not any(m.client_streaming for m in contract.descriptor.methods)


class ChannelFactory:
    """Creates each downstream channel once and closes them all on shutdown."""

    def __init__(self, settings: Settings, addresses: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._addresses = dict(addresses or settings.addresses)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._local: dict[str, LocalEndpoint] = {}
        # Read here, so a bad certificate stops the process before anything starts.
        self._credentials = (
            None
            if settings.tls is None
            else transport.channel_credentials(settings.tls, require_identity=True)
        )

    def set_address(self, service: str, address: str) -> None:
        """Point ``service`` elsewhere (a server that bound port 0); only before its first use."""
        if service in self._channels:
            raise RuntimeError(f"the channel to {service} is already open")
        self._addresses[service] = address

    def serve_locally(self, endpoint: LocalEndpoint) -> None:
        """Calls from this process to ``endpoint.service`` go in-process from now on (unless
        ``HIVEMESH_LOCAL_CALLS`` is off). Register a service before the services that call it are
        built: a channel already handed out stays what it is."""
        service = endpoint.service
        if not self._settings.local_calls or not carried_in_process(CONTRACTS[service]):
            return
        if service in self._channels:
            raise RuntimeError(
                f"a gRPC channel to {service} is already open: build {service} before its callers"
            )
        self._local[service] = endpoint

    def is_local(self, service: str) -> bool:
        """Whether calls to ``service`` stay in this process."""
        return service in self._local

    def channel(self, service: str) -> grpc.aio.Channel:
        existing = self._channels.get(service)
        if existing is not None:
            return existing
        created = self._open(service, self._addresses[service], self._local.get(service))
        self._channels[service] = created
        return created

    def channel_to(self, service: str, address: str) -> grpc.aio.Channel:
        """A channel to one replica (or pool) of ``service`` at ``address``, with the options of
        ``channel(service)``; the service's own address gives ``channel(service)`` itself."""
        if address == self._addresses[service]:
            return self.channel(service)
        return self.network_channel(service, address)

    def network_channel(self, service: str, address: str) -> grpc.aio.Channel:
        """A gRPC channel to ``service`` at ``address`` even when the service runs in this process:
        for a question that must pass the mesh's routing, such as which side of a canary runs this
        very process."""
        key = f"{service}@{address}"
        existing = self._channels.get(key)
        if existing is None:
            existing = self._channels[key] = self._open(service, address, None)
        return existing

    def _open(self, service: str, address: str, endpoint: LocalEndpoint | None) -> grpc.aio.Channel:
        settings = self._settings
        interceptors = client_interceptors(settings.default_call_timeout_s, settings.deadline_margin_s)
        created: grpc.aio.Channel
        if endpoint is not None:
            contract = CONTRACTS[service]
            created = LocalChannel(
                endpoint,
                interceptors=interceptors,
                max_message_bytes=settings.server.max_message_bytes,
                # The same policy as the gRPC channel's service config (none inside a mesh).
                retry=None if settings.in_mesh else RETRY_POLICY,
                retryable_methods=[
                    f"/{contract.full_name}/{m}" for m in retryable_methods(contract.descriptor)
                ],
            )
        elif self._credentials is None:
            created = grpc.aio.insecure_channel(
                address,
                options=channel_options(settings, service),
                interceptors=interceptors,
            )
        else:
            created = grpc.aio.secure_channel(
                address,
                self._credentials,
                options=channel_options(settings, service),
                interceptors=interceptors,
            )
        return created

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close(None)
