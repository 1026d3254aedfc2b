"""Long-term vectors in Qdrant Edge: the Qdrant engine in-process, persisted to a directory.

Edge calls block, so writes and index builds run in worker threads; queries run inline (see
``search``). New points land in an appendable segment that is searched exactly and is visible at
once; ``maintain`` (a background component) builds the HNSW graph for them off the request path,
so the index build never delays a Remember or a Recall.

Each query fans its per-segment reads out to the shard's own search pool. That pool is kept small
(half the CPUs by default): with Qdrant's default of one thread per CPU, a query on a 2-core
machine cost about twice the CPU time for no gain in throughput.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import qdrant_edge as qe

from hivemesh.memory.adapters import payload as pl
from hivemesh.memory.config import HnswSettings
from hivemesh.memory.errors import DimensionMismatch
from hivemesh.memory.model import Hit, Memory, Owner

_SHARD = "shard"
_META_FILE = "index.json"


def default_search_threads() -> int:
    """Half the CPUs, at least one."""
    return max(1, (os.cpu_count() or 1) // 2)


class EdgeIndex:
    def __init__(
        self, directory: Path, hnsw: HnswSettings, dimensions: int = 0, *, search_threads: int = 0
    ) -> None:
        self._directory = directory
        self._hnsw = hnsw
        self._configured = dimensions
        self._search_threads = search_threads or default_search_threads()
        self._shard: qe.EdgeShard | None = None
        self._dimensions: int | None = None
        self._lock = asyncio.Lock()
        self._dirty = False

    @property
    def dimensions(self) -> int | None:
        return self._dimensions

    async def open(self) -> None:
        meta = self._directory / _META_FILE
        if meta.exists():
            self._dimensions = int(json.loads(meta.read_text())["dimensions"])
            # Only the vector size (checked against the shard) and the search pool are given;
            # everything else is what the shard persisted.
            config = qe.EdgeConfig(
                vectors=qe.EdgeVectorParams(size=self._dimensions, distance=qe.Distance.Cosine),
                max_search_threads=self._search_threads,
            )
            self._shard = await asyncio.to_thread(qe.EdgeShard.load, str(self._directory / _SHARD), config)
            self._dirty = True
            if self._configured and self._configured != self._dimensions:
                raise DimensionMismatch(self._configured, self._dimensions)
        elif self._configured:
            await self.ensure(self._configured)

    async def ensure(self, dimensions: int) -> None:
        async with self._lock:
            if self._dimensions is not None:
                if dimensions != self._dimensions:
                    raise DimensionMismatch(dimensions, self._dimensions)
                return
            self._shard = await asyncio.to_thread(self._create, dimensions)
            self._dimensions = dimensions

    def _create(self, dimensions: int) -> qe.EdgeShard:
        self._directory.mkdir(parents=True, exist_ok=True)
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dimensions, distance=qe.Distance.Cosine),
            hnsw_config=qe.HnswIndexConfig(
                m=self._hnsw.m, ef_construct=self._hnsw.ef_construct, full_scan_threshold=10_000
            ),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=self._hnsw.indexing_threshold_kb),
            max_search_threads=self._search_threads,
            # Recall returns payloads on every hit: keep them (and the payload indexes) in RAM.
            payload_memory=qe.Memory.Cached,
        )
        shard = qe.EdgeShard.create(str(self._directory / _SHARD), config)
        shard.update(qe.UpdateOperation.create_field_index(pl.TENANT, qe.KeywordIndexParams(is_tenant=True)))
        for name in (pl.USER, pl.META):
            # Filtering only: no extra graph links per user or metadata value.
            shard.update(
                qe.UpdateOperation.create_field_index(name, qe.KeywordIndexParams(enable_hnsw=False))
            )
        shard.update(qe.UpdateOperation.create_field_index(pl.EXPIRE, qe.FloatIndexParams(enable_hnsw=False)))
        shard.update(qe.UpdateOperation.create_field_index(pl.VERSION, qe.PayloadSchemaType.Integer))
        shard.flush()
        # Written last: its presence means the shard is complete.
        (self._directory / _META_FILE).write_text(json.dumps({"dimensions": dimensions}))
        return shard

    async def upsert(self, entries: Sequence[tuple[Memory, Sequence[float]]]) -> None:
        shard = self._require()
        if len(entries) == 1:
            memory, vector = entries[0]
            point = qe.Point(uuid.UUID(memory.memory_id), list(vector), pl.to_payload(memory))
            # Only a point with an older version (or none) is replaced: updates may publish out of order.
            newer_only = qe.Filter(
                must=[qe.FieldCondition(pl.VERSION, range=qe.RangeFloat(lt=memory.version))]
            )
            operation = qe.UpdateOperation.upsert_points([point], condition=newer_only)
        else:
            operation = qe.UpdateOperation.upsert_points(
                [qe.Point(uuid.UUID(m.memory_id), list(v), pl.to_payload(m)) for m, v in entries]
            )
        await asyncio.to_thread(shard.update, operation)
        self._dirty = True

    async def search(
        self,
        owner: Owner,
        vector: Sequence[float],
        *,
        limit: int,
        filters: Mapping[str, str],
        min_score: float,
        now: float,
    ) -> list[Hit]:
        shard = self._require()
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(list(vector)),
            filter=_owner_filter(owner, filters, now),
            with_payload=list(pl.RETURNED),
            score_threshold=min_score if min_score > 0 else None,
            params=qe.SearchParams(hnsw_ef=max(self._hnsw.ef, limit)),
        )
        # Called inline, not in a worker thread: qdrant-edge holds the GIL for the whole query, so a
        # thread would not let the event loop run meanwhile, and handing the GIL back and forth
        # cost about 0.5 ms of CPU per Recall (a third of the server's work per call) on 2 cores.
        points = shard.query(request)
        return [pl.to_hit(p.id, p.payload or {}, p.score) for p in points]

    async def delete(self, owner: Owner, memory_ids: Sequence[str]) -> None:
        if self._shard is None or not memory_ids:
            return
        ids: set[qe.PointId] = set()
        for memory_id in memory_ids:
            try:
                ids.add(uuid.UUID(memory_id))
            except ValueError:
                continue  # not an id this store ever issued
        if not ids:
            return
        selected = qe.Filter(must=[qe.HasIdCondition(ids), *_owner_conditions(owner)])
        await asyncio.to_thread(self._shard.update, qe.UpdateOperation.delete_points_by_filter(selected))

    async def maintain(self) -> None:
        if self._shard is None or not self._dirty:
            return
        self._dirty = False
        await asyncio.to_thread(self._shard.optimize)

    async def close(self) -> None:
        shard, self._shard = self._shard, None
        if shard is not None:
            await asyncio.to_thread(_flush_and_close, shard)

    def _require(self) -> qe.EdgeShard:
        if self._shard is None:
            raise RuntimeError("the vector index is not open or has no collection yet")
        return self._shard


def _flush_and_close(shard: qe.EdgeShard) -> None:
    shard.flush()
    shard.close()


def _owner_conditions(owner: Owner) -> list[qe.FieldCondition]:
    return [
        qe.FieldCondition(pl.TENANT, match=qe.MatchValue(owner.tenant_id)),
        qe.FieldCondition(pl.USER, match=qe.MatchValue(owner.user_id)),
    ]


def _owner_filter(owner: Owner, filters: Mapping[str, str], now: float) -> qe.Filter:
    must: list[qe.ConditionType] = list(_owner_conditions(owner))
    must.extend(
        qe.FieldCondition(pl.META, match=qe.MatchValue(pl.meta_pair(k, v))) for k, v in filters.items()
    )
    return qe.Filter(
        must=must,
        must_not=[qe.FieldCondition(pl.EXPIRE, range=qe.RangeFloat(lte=now))],
    )
