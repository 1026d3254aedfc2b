"""Long-term vectors in a Qdrant server through qdrant-client (the distributed adapter).

The same client API also runs qdrant-client's local mode (``QdrantClient(path=...)`` or
``":memory:"``), which the shared adapter test suite uses where no server is available.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Mapping, Sequence

from qdrant_client import AsyncQdrantClient, models

from hivemesh.memory.adapters import payload as pl
from hivemesh.memory.config import HnswSettings
from hivemesh.memory.errors import DimensionMismatch
from hivemesh.memory.model import Hit, Memory, Owner


class QdrantIndex:
    def __init__(
        self, client: AsyncQdrantClient, collection: str, hnsw: HnswSettings, dimensions: int = 0
    ) -> None:
        self._client = client
        self._collection = collection
        self._hnsw = hnsw
        self._configured = dimensions
        self._dimensions: int | None = None

    @property
    def store(self) -> str:
        return "qdrant"

    @property
    def dimensions(self) -> int | None:
        return self._dimensions

    async def open(self) -> None:
        if await self._client.collection_exists(self._collection):
            info = await self._client.get_collection(self._collection)
            params = info.config.params.vectors
            if not isinstance(params, models.VectorParams):
                raise DimensionMismatch(self._configured, 0)
            self._dimensions = params.size
            if self._configured and self._configured != self._dimensions:
                raise DimensionMismatch(self._configured, self._dimensions)
        elif self._configured:
            await self.ensure(self._configured)

    async def ensure(self, dimensions: int) -> None:
        if self._dimensions is not None:
            if dimensions != self._dimensions:
                raise DimensionMismatch(dimensions, self._dimensions)
            return
        if not await self._client.collection_exists(self._collection):
            await self._client.create_collection(
                self._collection,
                vectors_config=models.VectorParams(size=dimensions, distance=models.Distance.COSINE),
                hnsw_config=models.HnswConfigDiff(m=self._hnsw.m, ef_construct=self._hnsw.ef_construct),
            )
            await self._create_payload_indexes()
        await self.open()
        if self._dimensions != dimensions:
            raise DimensionMismatch(dimensions, self._dimensions or 0)

    async def _create_payload_indexes(self) -> None:
        keyword = models.KeywordIndexType.KEYWORD
        indexes: list[tuple[str, models.PayloadSchemaType | models.KeywordIndexParams]] = [
            (pl.TENANT, models.KeywordIndexParams(type=keyword, is_tenant=True)),
            (pl.USER, models.KeywordIndexParams(type=keyword)),
            (pl.META, models.KeywordIndexParams(type=keyword)),
            (pl.EXPIRE, models.PayloadSchemaType.FLOAT),
            (pl.VERSION, models.PayloadSchemaType.INTEGER),
        ]
        with warnings.catch_warnings():
            # Local mode (tests) warns that payload indexes have no effect there; a server uses them.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect", category=UserWarning)
            for name, schema in indexes:
                await self._client.create_payload_index(self._collection, name, field_schema=schema)

    async def upsert(self, entries: Sequence[tuple[Memory, Sequence[float]]]) -> None:
        points = [
            models.PointStruct(id=m.memory_id, vector=list(v), payload=pl.to_payload(m)) for m, v in entries
        ]
        if len(entries) == 1:
            # Only a point with an older version (or none) is replaced: updates may publish out of order.
            newer_only = models.Filter(
                must=[models.FieldCondition(key=pl.VERSION, range=models.Range(lt=entries[0][0].version))]
            )
            await self._client.upsert(self._collection, points, update_filter=newer_only)
        else:
            await self._client.upsert(self._collection, points)

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
        response = await self._client.query_points(
            self._collection,
            query=list(vector),
            query_filter=_owner_filter(owner, filters, now),
            limit=limit,
            with_payload=list(pl.RETURNED),
            score_threshold=min_score if min_score > 0 else None,
            search_params=models.SearchParams(hnsw_ef=max(self._hnsw.ef, limit)),
        )
        return [pl.to_hit(p.id, p.payload or {}, p.score) for p in response.points]

    async def delete(self, owner: Owner, memory_ids: Sequence[str]) -> None:
        ids: list[models.ExtendedPointId] = []
        for memory_id in memory_ids:
            try:
                ids.append(str(uuid.UUID(memory_id)))
            except ValueError:
                continue  # not an id this store ever issued
        if self._dimensions is None or not ids:
            return
        selected = models.Filter(must=[models.HasIdCondition(has_id=ids), *_owner_conditions(owner)])
        await self._client.delete(self._collection, points_selector=models.FilterSelector(filter=selected))

    async def maintain(self) -> None:
        """The server builds its indexes itself."""

    async def close(self) -> None:
        await self._client.close()


def _owner_conditions(owner: Owner) -> list[models.Condition]:
    return [
        models.FieldCondition(key=pl.TENANT, match=models.MatchValue(value=owner.tenant_id)),
        models.FieldCondition(key=pl.USER, match=models.MatchValue(value=owner.user_id)),
    ]


def _owner_filter(owner: Owner, filters: Mapping[str, str], now: float) -> models.Filter:
    must = _owner_conditions(owner)
    must.extend(
        models.FieldCondition(key=pl.META, match=models.MatchValue(value=pl.meta_pair(k, v)))
        for k, v in filters.items()
    )
    return models.Filter(
        must=must,
        must_not=[models.FieldCondition(key=pl.EXPIRE, range=models.Range(lte=now))],
    )
