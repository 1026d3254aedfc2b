"""Helpers for tests that run real servers on port 0."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeAlias

import grpc

from hivemesh.gateway.app import key_store
from hivemesh.gateway.keys import OPERATOR
from hivemesh.mesh.config import SERVICES, Settings
from hivemesh.mesh.credentials import CREDENTIAL_HEADER, SCOPE_TYPE, Minter, minter_for
from hivemesh.mesh.launch import LocalMesh
from hivemesh.mesh.status import StatusDetails, details_of

# Who a test's direct call to an internal service acts for when its request names no scope.
TEST_TENANT, TEST_USER = "default", "tester"

# The metadata of one call: (key, value) pairs.
Metadata: TypeAlias = tuple[tuple[str, str], ...]


def make_settings(data_dir: Path, **env: str) -> Settings:
    base = {"HIVEMESH_DATA_DIR": str(data_dir), "HIVEMESH_METRICS_PORT": "off", **env}
    settings = Settings.from_env(base)
    return replace(settings, ports=dict.fromkeys(SERVICES, 0))


class RunningMesh(LocalMesh):
    """A LocalMesh plus plain client channels (no interceptors), as an outside caller would have."""

    def __init__(self, settings: Settings, services: Sequence[str]) -> None:
        super().__init__(settings, services)
        self._clients: list[grpc.aio.Channel] = []

    def client(self, service: str, acting: tuple[str, str] = (TEST_TENANT, TEST_USER)) -> grpc.aio.Channel:
        """A channel to ``service``; to an internal service it carries a mesh credential for the
        scope of each request, or for ``acting`` (see ``credentialed_channel``)."""
        if service == "gateway":
            channel = grpc.aio.insecure_channel(self.address(service))
        else:
            channel = credentialed_channel(self.address(service), self.settings, acting)
        self._clients.append(channel)
        return channel

    def bare_client(self, service: str) -> grpc.aio.Channel:
        """A channel to ``service`` that carries no credential."""
        channel = grpc.aio.insecure_channel(self.address(service))
        self._clients.append(channel)
        return channel

    async def stop(self, grace_s: float = 1.0) -> None:
        for channel in self._clients:
            await channel.close(None)
        await super().stop(grace_s)


async def start_mesh(settings: Settings, services: Sequence[str] = SERVICES) -> RunningMesh:
    mesh = RunningMesh(settings, services)
    await mesh.start()
    return mesh


async def rpc_error(awaitable: object) -> StatusDetails:
    """Await a call that must fail; return its decoded status."""
    try:
        await awaitable  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return details_of(exc)
    raise AssertionError("the call succeeded but was expected to fail")


class _ActingForScope:
    """Adds a mesh credential minted for the tenant and user each request's scope names (the
    test's, when it names none), as an operator holding the mesh's signing key could."""

    def __init__(self, minter: Minter, acting: tuple[str, str]) -> None:
        self._minter = minter
        self._acting = acting

    def _details(self, details: Any, request: Any) -> Any:
        tenant, user = self._acting
        descriptor = getattr(request, "DESCRIPTOR", None)  # None: raw bytes, sent as they are
        field = descriptor.fields_by_name.get("scope") if descriptor is not None else None
        if (
            field is not None
            and field.message_type is not None
            and field.message_type.full_name == SCOPE_TYPE
        ):
            tenant, user = request.scope.tenant_id or tenant, request.scope.user_id or user
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if CREDENTIAL_HEADER not in metadata:
            metadata.add(CREDENTIAL_HEADER, self._minter.mint(tenant, user))
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _UnaryActingForScope(_ActingForScope, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details, request), request)


class _StreamActingForScope(_ActingForScope, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details, request), request)


def mesh_minter(settings: Settings) -> Minter:
    minter = minter_for(settings)
    assert minter is not None, "HIVEMESH_MESH_AUTH is off in these settings"
    return minter


def credentialed_channel(
    address: str, settings: Settings, acting: tuple[str, str] = (TEST_TENANT, TEST_USER)
) -> grpc.aio.Channel:
    """A plain channel to an internal service whose calls carry a credential for their scope, or
    for ``acting`` (tenant, user) when they name none (no credential when ``HIVEMESH_MESH_AUTH`` is
    off)."""
    minter = minter_for(settings)
    if minter is None:
        return grpc.aio.insecure_channel(address)
    interceptors: list[Any] = [_UnaryActingForScope(minter, acting), _StreamActingForScope(minter, acting)]
    return grpc.aio.insecure_channel(address, interceptors=interceptors)


def credential_metadata(
    settings: Settings, tenant: str = TEST_TENANT, user: str = TEST_USER
) -> tuple[tuple[str, str], ...]:
    """Metadata that lets a call into an internal service act for ``tenant`` and ``user``."""
    return ((CREDENTIAL_HEADER, mesh_minter(settings).mint(tenant, user)),)


async def keys_for(settings: Settings, *tenants: str, role: str = OPERATOR) -> list[str]:
    """A new API key with ``role`` for each tenant, in the gateway's key store of ``settings``."""
    store = key_store(settings)
    await store.start()
    try:
        return [(await store.create(tenant, name=f"{tenant} test", role=role))[1] for tenant in tenants]
    finally:
        await store.stop(0)


async def key_metadata(settings: Settings, *tenants: str, role: str = OPERATOR) -> list[Metadata]:
    """``keys_for``, each key as the metadata of a call made with it."""
    return [(("x-api-key", key),) for key in await keys_for(settings, *tenants, role=role)]
