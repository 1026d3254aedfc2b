"""Wires the memory service: the adapters chosen by settings, the domain, the servicer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.memory.adapters.edge_index import EdgeIndex
from hivemesh.memory.adapters.language_embedder import LanguageEmbedder
from hivemesh.memory.adapters.sql_ledger import SqlLedger
from hivemesh.memory.adapters.sql_records import SqlRecordStore
from hivemesh.memory.adapters.sql_turns import SqlTurnStore
from hivemesh.memory.config import EmbedderKind, MemoryConfig
from hivemesh.memory.hashing import HashingEmbedder
from hivemesh.memory.knowledge import KnowledgeSettings, LongTermMemory
from hivemesh.memory.ports import Embedder, VectorIndex
from hivemesh.memory.profile import TimeZones
from hivemesh.memory.records import StructuredRecords
from hivemesh.memory.runtime import Chore, MemoryRuntime
from hivemesh.memory.schemas import RecordKinds
from hivemesh.memory.servicer import MemoryServicer
from hivemesh.memory.shortterm import ShortTermMemory, TurnStore
from hivemesh.memory.usage import Layer, MemoryUsage
from hivemesh.memory.v1.memory_service_pb2_grpc import add_MemoryServiceServicer_to_server
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.credentials import guard_for
from hivemesh.mesh.language_pools import language_pools
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import ServiceApp
from hivemesh.mesh.sql import make_engine, sqlite_url


def build(settings: Settings, channels: ChannelFactory, metrics: Metrics) -> ServiceApp:
    config = MemoryConfig.from_env()
    # Embed is a heavy call: with a GPU pool of language replicas, it goes there first.
    pools = None
    if config.embedder is not EmbedderKind.HASHING:
        pools = language_pools(settings, channels, metrics, "memory")
    if pools is None:
        return build_with(settings, channels, config)
    app = build_with(
        settings, channels, config, embedder=LanguageEmbedder(lambda: channels.channel("language"), pools)
    )
    return replace(app, components=[pools, *app.components])


def build_with(
    settings: Settings,
    channels: ChannelFactory,
    config: MemoryConfig,
    *,
    engine: AsyncEngine | None = None,
    index: VectorIndex | None = None,
    embedder: Embedder | None = None,
    clock: Callable[[], float] = time.time,
) -> ServiceApp:
    """``build`` with the memory settings given; tests and benchmarks may also hand in adapters."""
    own_engine = engine is None
    sql = engine or make_engine(settings.database_url or sqlite_url(settings.data_dir / "memory.db"))
    turn_store = _turn_store(settings, config, sql)
    index = index or _index(settings, config)
    ledger = SqlLedger(sql)
    long = LongTermMemory(
        ledger,
        index,
        embedder or _embedder(config, channels),
        KnowledgeSettings(dedup_threshold=config.dedup_threshold),
        clock,
    )
    short = ShortTermMemory(
        turn_store,
        default_budget=config.context_tokens,
        max_turns=config.max_turns,
        ttl_s=config.session_ttl_s,
        clock=clock,
    )
    record_store = SqlRecordStore(sql)
    records = StructuredRecords(
        record_store, RecordKinds(), max_value_bytes=config.max_record_bytes, clock=clock
    )
    ledger_store = sql.dialect.name
    usage = MemoryUsage(
        Layer("redis" if settings.redis_url is not None else ledger_store, turn_store),
        # Each memory is one vector of the index; the ledger beside it is what is counted.
        Layer(index.store, ledger),
        Layer(ledger_store, record_store),
        clock,
    )
    servicer = MemoryServicer(short, long, records, TimeZones(records, clock=clock), usage)

    async def sweep() -> None:
        await long.sweep()
        await record_store.sweep(clock())
        if isinstance(turn_store, SqlTurnStore):
            await turn_store.sweep(clock())

    chores = [
        Chore("sweeper", config.sweep_interval_s, sweep),
        Chore("indexer", config.optimize_interval_s, index.maintain),
    ]
    return ServiceApp(
        name="memory",
        guard=guard_for(settings, "memory"),
        register=lambda server: add_MemoryServiceServicer_to_server(servicer, server),
        components=[
            MemoryRuntime(
                sql, index, turn_store, chores, dispose_engine=own_engine, closing=[record_store.close]
            )
        ],
    )


def _turn_store(settings: Settings, config: MemoryConfig, engine: AsyncEngine) -> TurnStore:
    if settings.redis_url is None:
        return SqlTurnStore(engine)
    from hivemesh.memory.adapters.redis_turns import RedisTurnStore  # noqa: PLC0415
    from hivemesh.mesh.redis_client import redis_client  # noqa: PLC0415 - the distributed extra

    return RedisTurnStore(redis_client(settings.redis_url), config.redis_prefix)


def _index(settings: Settings, config: MemoryConfig) -> VectorIndex:
    if settings.qdrant_url is None:
        return EdgeIndex(
            settings.data_dir / "qdrant", config.hnsw, config.dimensions, search_threads=config.search_threads
        )
    from qdrant_client import AsyncQdrantClient  # noqa: PLC0415 - the distributed extra

    from hivemesh.memory.adapters.qdrant_index import QdrantIndex  # noqa: PLC0415

    return QdrantIndex(
        AsyncQdrantClient(url=settings.qdrant_url), config.collection, config.hnsw, config.dimensions
    )


def _embedder(config: MemoryConfig, channels: ChannelFactory) -> Embedder:
    if config.embedder is EmbedderKind.HASHING:
        return HashingEmbedder(config.hashing_dimensions)
    return LanguageEmbedder(lambda: channels.channel("language"))


__all__ = ["build", "build_with"]
