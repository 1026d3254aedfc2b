"""Memory service settings, read once from ``HIVEMESH_MEMORY_*`` variables and then frozen."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from hivemesh.mesh.config import ConfigError, EnvReader, RedisKeys


class EmbedderKind(StrEnum):
    """Where text embeddings come from."""

    # The language service's Embed RPC (the mesh default).
    LANGUAGE = "language"
    # The built-in hashing encoder, in-process: no language service needed.
    HASHING = "hashing"


@dataclass(frozen=True)
class HnswSettings:
    """HNSW index parameters of the long-term store (the benchmark reports them)."""

    m: int = 16
    ef_construct: int = 128
    # Candidates examined per query; higher is slower and closer to exact.
    ef: int = 64
    # Below this many kilobytes of vectors a segment is searched exactly, without a graph.
    indexing_threshold_kb: int = 10_000

    def points_per_build(self, dimensions: int) -> int:
        """Unindexed points worth a build: as many float32 vectors as fill the indexing threshold
        (6,826 of 384 dimensions)."""
        return max(1, self.indexing_threshold_kb * 1024 // (4 * dimensions))


@dataclass(frozen=True)
class MemoryConfig:
    embedder: EmbedderKind = EmbedderKind.LANGUAGE
    # Vector length; 0 takes the length of the first embedding (or of the existing collection).
    dimensions: int = 0
    # Dimensions of the built-in hashing encoder.
    hashing_dimensions: int = 384
    # Cosine similarity at or above which a new memory refreshes an existing one instead.
    dedup_threshold: float = 0.92
    context_tokens: int = 2000
    max_turns: int = 200
    session_ttl_s: float = 7 * 24 * 3600.0
    sweep_interval_s: float = 30.0
    # Seconds between background index builds when new vectors arrived.
    optimize_interval_s: float = 5.0
    max_record_bytes: int = 64 * 1024
    collection: str = "hivemesh_memories"
    # Prefix of the short-term turns in Redis (``RedisKeys.memory``, from HIVEMESH_REDIS_PREFIX).
    redis_prefix: str = RedisKeys().memory
    hnsw: HnswSettings = HnswSettings()
    # Threads of the embedded store's per-query search pool; 0 = half the CPUs, at least one.
    search_threads: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MemoryConfig:
        e = os.environ if env is None else env
        r = EnvReader(e)
        d = cls()
        raw_embedder = r.text("HIVEMESH_MEMORY_EMBEDDER", d.embedder.value).lower()
        try:
            embedder = EmbedderKind(raw_embedder)
        except ValueError:
            allowed = ", ".join(k.value for k in EmbedderKind)
            raise ConfigError(
                f"HIVEMESH_MEMORY_EMBEDDER must be one of {allowed}, got {raw_embedder!r}"
            ) from None
        threshold = r.number("HIVEMESH_MEMORY_DEDUP_THRESHOLD", d.dedup_threshold)
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"HIVEMESH_MEMORY_DEDUP_THRESHOLD must be in (0, 1], got {threshold}")
        return cls(
            embedder=embedder,
            dimensions=r.integer("HIVEMESH_MEMORY_DIMENSIONS", d.dimensions, minimum=0),
            hashing_dimensions=r.integer(
                "HIVEMESH_MEMORY_HASHING_DIMENSIONS", d.hashing_dimensions, minimum=8
            ),
            dedup_threshold=threshold,
            context_tokens=r.integer("HIVEMESH_MEMORY_CONTEXT_TOKENS", d.context_tokens, minimum=1),
            max_turns=r.integer("HIVEMESH_MEMORY_MAX_TURNS", d.max_turns, minimum=1),
            session_ttl_s=r.seconds("HIVEMESH_MEMORY_SESSION_TTL", d.session_ttl_s, minimum=1.0),
            sweep_interval_s=r.seconds("HIVEMESH_MEMORY_SWEEP_INTERVAL", d.sweep_interval_s, minimum=0.01),
            optimize_interval_s=r.seconds(
                "HIVEMESH_MEMORY_OPTIMIZE_INTERVAL", d.optimize_interval_s, minimum=0.01
            ),
            collection=r.text("HIVEMESH_MEMORY_COLLECTION", d.collection),
            redis_prefix=RedisKeys.from_env(e).memory,
            search_threads=r.integer("HIVEMESH_MEMORY_SEARCH_THREADS", d.search_threads, minimum=0),
            hnsw=HnswSettings(
                m=r.integer("HIVEMESH_MEMORY_HNSW_M", d.hnsw.m, minimum=4),
                ef_construct=r.integer("HIVEMESH_MEMORY_HNSW_EF_CONSTRUCT", d.hnsw.ef_construct, minimum=8),
                ef=r.integer("HIVEMESH_MEMORY_HNSW_EF", d.hnsw.ef, minimum=1),
            ),
        )
