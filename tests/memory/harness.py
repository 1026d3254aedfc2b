"""Runs the memory service on port 0 over either adapter set, with the hashing encoder."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from qdrant_client import AsyncQdrantClient
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.memory.adapters.qdrant_index import QdrantIndex
from hivemesh.memory.app import build_with
from hivemesh.memory.config import EmbedderKind, MemoryConfig
from hivemesh.memory.ports import VectorIndex
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer
from tests.support import credentialed_channel, make_settings

if TYPE_CHECKING:  # the async stub type exists only for type checkers
    from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceAsyncStub

REDIS_URL = os.environ.get("HIVEMESH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get(
    "HIVEMESH_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)

EMBEDDED = "embedded"
DISTRIBUTED = "distributed"


def scope(tenant: str = "acme", user: str = "ana", session: str = "s1") -> Scope:
    return Scope(tenant_id=tenant, user_id=user, session_id=session)


@dataclass
class Clock:
    """A settable clock, so expiry is tested without sleeping."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class MemoryUnderTest:
    stub: MemoryServiceAsyncStub
    clock: Clock
    server: MeshServer
    settings: Settings


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[AsyncEngine]:
    """An engine whose tables live in a fresh schema, dropped afterwards."""
    schema = f"memory_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(DATABASE_URL)
    async with admin.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = create_async_engine(DATABASE_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        yield engine
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


async def _drop_redis_prefix(prefix: str) -> None:
    from redis.asyncio import Redis  # noqa: PLC0415 - only the distributed tests need it

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@asynccontextmanager
async def memory_service(
    data_dir: Path,
    backend: str = EMBEDDED,
    config: MemoryConfig | None = None,
    index: Callable[[MemoryConfig], VectorIndex] | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[MemoryUnderTest]:
    """The memory service over SQLite + Qdrant Edge (embedded) or Redis + PostgreSQL + qdrant-client."""
    base = config or MemoryConfig(
        embedder=EmbedderKind.HASHING, hashing_dimensions=256, sweep_interval_s=3600
    )
    clock = Clock()
    prefix = f"hivemesh-test:{uuid.uuid4().hex}:"
    cfg = replace(base, redis_prefix=prefix)
    async with _engine(backend) as engine:
        extra = {"HIVEMESH_REDIS_URL": REDIS_URL} if backend == DISTRIBUTED else {}
        settings = make_settings(data_dir, **extra, **(env or {}))
        chosen = index(cfg) if index else None
        if chosen is None and backend == DISTRIBUTED:
            chosen = QdrantIndex(
                AsyncQdrantClient(location=":memory:"), cfg.collection, cfg.hnsw, cfg.dimensions
            )
        channels = ChannelFactory(settings)
        app = build_with(settings, channels, cfg, engine=engine, index=chosen, clock=clock)
        server = MeshServer(app, settings.server, 0, Metrics())
        await server.start()
        channel = credentialed_channel(f"127.0.0.1:{server.port}", settings)
        try:
            yield MemoryUnderTest(MemoryServiceStub(channel), clock, server, settings)
        finally:
            await channel.close(None)
            await server.stop(1.0)
            await channels.close()
            if backend == DISTRIBUTED:
                await _drop_redis_prefix(prefix)


@asynccontextmanager
async def _engine(backend: str) -> AsyncIterator[AsyncEngine | None]:
    if backend == DISTRIBUTED:
        async with postgres_schema() as engine:
            yield engine
    else:
        yield None
