"""Memory service settings, read once from ``HIVEMESH_MEMORY_*`` variables and then frozen."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from hivemesh.mesh.config import ConfigError


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
    redis_prefix: str = "hivemesh:memory:"
    hnsw: HnswSettings = HnswSettings()
    # Threads of the embedded store's per-query search pool; 0 = half the CPUs, at least one.
    search_threads: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MemoryConfig:
        e = os.environ if env is None else env
        d = cls()
        raw_embedder = e.get("HIVEMESH_MEMORY_EMBEDDER", "").strip().lower() or d.embedder.value
        try:
            embedder = EmbedderKind(raw_embedder)
        except ValueError:
            allowed = ", ".join(k.value for k in EmbedderKind)
            raise ConfigError(
                f"HIVEMESH_MEMORY_EMBEDDER must be one of {allowed}, got {raw_embedder!r}"
            ) from None
        threshold = _number(e, "HIVEMESH_MEMORY_DEDUP_THRESHOLD", d.dedup_threshold)
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"HIVEMESH_MEMORY_DEDUP_THRESHOLD must be in (0, 1], got {threshold}")
        return cls(
            embedder=embedder,
            dimensions=_integer(e, "HIVEMESH_MEMORY_DIMENSIONS", d.dimensions, minimum=0),
            hashing_dimensions=_integer(
                e, "HIVEMESH_MEMORY_HASHING_DIMENSIONS", d.hashing_dimensions, minimum=8
            ),
            dedup_threshold=threshold,
            context_tokens=_integer(e, "HIVEMESH_MEMORY_CONTEXT_TOKENS", d.context_tokens, minimum=1),
            max_turns=_integer(e, "HIVEMESH_MEMORY_MAX_TURNS", d.max_turns, minimum=1),
            session_ttl_s=_number(e, "HIVEMESH_MEMORY_SESSION_TTL", d.session_ttl_s, minimum=1.0),
            sweep_interval_s=_number(e, "HIVEMESH_MEMORY_SWEEP_INTERVAL", d.sweep_interval_s, minimum=0.01),
            optimize_interval_s=_number(
                e, "HIVEMESH_MEMORY_OPTIMIZE_INTERVAL", d.optimize_interval_s, minimum=0.01
            ),
            collection=e.get("HIVEMESH_MEMORY_COLLECTION", "").strip() or d.collection,
            search_threads=_integer(e, "HIVEMESH_MEMORY_SEARCH_THREADS", d.search_threads, minimum=0),
            hnsw=HnswSettings(
                m=_integer(e, "HIVEMESH_MEMORY_HNSW_M", d.hnsw.m, minimum=4),
                ef_construct=_integer(e, "HIVEMESH_MEMORY_HNSW_EF_CONSTRUCT", d.hnsw.ef_construct, minimum=8),
                ef=_integer(e, "HIVEMESH_MEMORY_HNSW_EF", d.hnsw.ef, minimum=1),
            ),
        )


def _integer(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    """A plain number; durations also accept a unit suffix (250ms, 30s, 5m, 2h, 7d)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    number, scale = raw, 1.0
    for suffix in ("ms", "s", "m", "h", "d"):
        if raw.endswith(suffix):
            number, scale = raw[: -len(suffix)], units[suffix]
            break
    try:
        value = float(number) * scale
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value
