"""Long-term vectors in Qdrant Edge: the Qdrant engine in-process, persisted to a directory.

Edge calls block, so writes run in worker threads; queries run inline (see ``search``). New points
land in an appendable segment that is searched exactly and is visible at once.

The HNSW graph for them is built off the request path **and out of this process**: qdrant-edge
holds the GIL for the whole of an index build, so an in-process build would stall every request
for as long as it runs (about a minute for 100,000 vectors of 384 dimensions). ``maintain``
therefore copies the shard, has ``edge_build`` build the copy in a child process, and swaps the
built copy in; writes that arrive meanwhile are applied to the live shard and journalled, and the
journal is replayed onto the copy before the swap, so nothing written during a build is lost.

Layout of the directory: ``index.json`` (vector size and the name of the live shard directory,
replaced atomically on a swap) and that shard directory, ``shard-<generation>``. A directory left
over from a build that was interrupted is removed on open.

Each query fans its per-segment reads out to the shard's own search pool. That pool is kept small
(half the CPUs by default): with Qdrant's default of one thread per CPU, a query on a 2-core
machine cost about twice the CPU time for no gain in throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import qdrant_edge as qe

from hivemesh.memory.adapters import payload as pl
from hivemesh.memory.config import HnswSettings
from hivemesh.memory.errors import DimensionMismatch
from hivemesh.memory.model import Hit, Memory, Owner

_log = logging.getLogger(__name__)

_META_FILE = "index.json"
# The shard directory of stores written before shards had generations.
_FIRST_SHARD = "shard"
_SHARD_PREFIX = "shard-"
BUILDER = (sys.executable, "-m", "hivemesh.memory.adapters.edge_build")


def default_search_threads() -> int:
    """Half the CPUs, at least one."""
    return max(1, (os.cpu_count() or 1) // 2)


class IndexBuildFailed(RuntimeError):
    """The out-of-process build did not produce a shard; the live shard is unchanged."""


class EdgeIndex:
    def __init__(
        self,
        directory: Path,
        hnsw: HnswSettings,
        dimensions: int = 0,
        *,
        search_threads: int = 0,
        builder: Sequence[str] = BUILDER,
    ) -> None:
        self._directory = directory
        self._hnsw = hnsw
        self._configured = dimensions
        self._search_threads = search_threads or default_search_threads()
        self._builder = tuple(builder)
        self._shard: qe.EdgeShard | None = None
        self._shard_name = ""
        self._dimensions: int | None = None
        self._lock = asyncio.Lock()
        # Serialises writes with the copy and the swap of a build.
        self._write_lock = asyncio.Lock()
        # Writes applied since the copy of a build in progress began; None when no build runs.
        self._journal: list[qe.UpdateOperation] | None = None
        self._building = False
        self._dirty = False
        # Points left unindexed by the last build (segments the optimizer chose not to index).
        self._unindexed_after_build = 0
        self._builds = 0

    @property
    def store(self) -> str:
        return "qdrant-edge"

    @property
    def dimensions(self) -> int | None:
        return self._dimensions

    @property
    def building(self) -> bool:
        """True from the start of a build until its copy is swapped in or given up."""
        return self._building

    @property
    def builds(self) -> int:
        """Builds swapped in since this index was opened."""
        return self._builds

    def info(self) -> qe.ShardInfo:
        return self._require().info()

    async def open(self) -> None:
        meta = self._directory / _META_FILE
        if meta.exists():
            recorded = json.loads(meta.read_text())
            self._dimensions = int(recorded["dimensions"])
            self._shard_name = str(recorded.get("shard", _FIRST_SHARD))
            await asyncio.to_thread(self._remove_leftovers)
            self._shard = await asyncio.to_thread(self._load, self._directory / self._shard_name)
            self._dirty = True
            if self._configured and self._configured != self._dimensions:
                raise DimensionMismatch(self._configured, self._dimensions)
        elif self._configured:
            await self.ensure(self._configured)

    def _load(self, path: Path) -> qe.EdgeShard:
        assert self._dimensions is not None
        # Only the vector size (checked against the shard) and the search pool are given;
        # everything else is what the shard persisted.
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=self._dimensions, distance=qe.Distance.Cosine),
            max_search_threads=self._search_threads,
        )
        return qe.EdgeShard.load(str(path), config)

    def _remove_leftovers(self) -> None:
        for path in self._directory.iterdir():
            is_shard = path.name == _FIRST_SHARD or path.name.startswith(_SHARD_PREFIX)
            if path.is_dir() and is_shard and path.name != self._shard_name:
                _log.info("removing %s, left over from an interrupted index build", path)
                shutil.rmtree(path, ignore_errors=True)

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
        name = f"{_SHARD_PREFIX}0"
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
        shard = qe.EdgeShard.create(str(self._directory / name), config)
        shard.update(qe.UpdateOperation.create_field_index(pl.TENANT, qe.KeywordIndexParams(is_tenant=True)))
        for field in (pl.USER, pl.META):
            # Filtering only: no extra graph links per user or metadata value.
            shard.update(
                qe.UpdateOperation.create_field_index(field, qe.KeywordIndexParams(enable_hnsw=False))
            )
        shard.update(qe.UpdateOperation.create_field_index(pl.EXPIRE, qe.FloatIndexParams(enable_hnsw=False)))
        shard.update(qe.UpdateOperation.create_field_index(pl.VERSION, qe.PayloadSchemaType.Integer))
        shard.flush()
        # Written last: its presence means the shard is complete.
        self._shard_name = name
        self._write_meta(dimensions, name)
        return shard

    def _write_meta(self, dimensions: int, shard_name: str) -> None:
        meta = self._directory / _META_FILE
        staged = meta.with_suffix(".tmp")
        staged.write_text(json.dumps({"dimensions": dimensions, "shard": shard_name}))
        os.replace(staged, meta)  # atomic: a crash leaves the old shard named, or the new one

    async def upsert(self, entries: Sequence[tuple[Memory, Sequence[float]]]) -> None:
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
        await self._apply(operation)

    async def _apply(self, operation: qe.UpdateOperation) -> None:
        async with self._write_lock:
            await asyncio.to_thread(self._require().update, operation)
            if self._journal is not None:
                self._journal.append(operation)
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
        await self._apply(qe.UpdateOperation.delete_points_by_filter(selected))

    async def maintain(self) -> None:
        """Build the HNSW graph for new points once there are enough of them, out of process."""
        if self._shard is None or not self._dirty:
            return
        self._dirty = False
        info = self._shard.info()
        unindexed = info.points_count - info.indexed_vectors_count
        assert self._dimensions is not None
        if unindexed - self._unindexed_after_build < self._hnsw.points_per_build(self._dimensions):
            return
        try:
            await self.rebuild()
        except IndexBuildFailed as exc:
            self._dirty = True  # try again next round; the live shard serves meanwhile
            _log.warning("index build failed, serving from the current index: %s", exc)

    async def rebuild(self) -> None:
        """Copy the shard, build the copy's graph in a child process, swap it in.

        Raises IndexBuildFailed (the live shard untouched) if the builder fails."""
        assert self._dimensions is not None
        shard = self._require()
        if self._building:
            raise RuntimeError("an index build is already running")
        self._building = True
        started = time.monotonic()
        name = f"{_SHARD_PREFIX}{self._next_generation()}"
        source, target = self._directory / self._shard_name, self._directory / name
        swapped = False
        try:
            async with self._write_lock:
                try:
                    await asyncio.to_thread(_flush_and_copy, shard, source, target)
                except OSError as exc:
                    raise IndexBuildFailed(f"could not copy the shard for a build: {exc}") from exc
                self._journal = []
            report = await self._run_builder(target)
            async with self._write_lock:
                journal, self._journal = self._journal or [], None
                try:
                    built = await asyncio.to_thread(_load_and_replay, self._load, target, journal)
                except Exception as exc:
                    raise IndexBuildFailed(f"the built copy could not be loaded: {exc}") from exc
                try:
                    self._write_meta(self._dimensions, name)
                except BaseException:
                    await asyncio.to_thread(built.close)
                    raise
                old, self._shard, self._shard_name = shard, built, name
                swapped = True
            info = built.info()
            self._unindexed_after_build = info.points_count - info.indexed_vectors_count
            self._builds += 1
            _log.info(
                "index build swapped in after %.1fs: %s points, %s indexed, %d writes replayed (%s)",
                time.monotonic() - started,
                info.points_count,
                info.indexed_vectors_count,
                len(journal),
                report,
            )
            await asyncio.to_thread(_close_and_remove, old, source)
        finally:
            self._journal = None
            self._building = False
            if not swapped:
                await asyncio.to_thread(shutil.rmtree, target, True)

    def _next_generation(self) -> int:
        current = self._shard_name.removeprefix(_SHARD_PREFIX)
        return int(current) + 1 if current.isdigit() else 1

    async def _run_builder(self, target: Path) -> str:
        process = await asyncio.create_subprocess_exec(
            *self._builder,
            str(target),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await process.communicate()
        except BaseException:
            # Cancelled (the service is stopping): the build is abandoned, not left running.
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-3:]
            raise IndexBuildFailed(f"the builder exited with {process.returncode}: {' | '.join(tail)}")
        return out.decode(errors="replace").strip()

    async def close(self) -> None:
        shard, self._shard = self._shard, None
        if shard is not None:
            await asyncio.to_thread(_flush_and_close, shard)

    def _require(self) -> qe.EdgeShard:
        if self._shard is None:
            raise RuntimeError("the vector index is not open or has no collection yet")
        return self._shard


def _flush_and_copy(shard: qe.EdgeShard, source: Path, target: Path) -> None:
    shard.flush()
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def _load_and_replay(
    load: Callable[[Path], qe.EdgeShard], path: Path, journal: Sequence[qe.UpdateOperation]
) -> qe.EdgeShard:
    shard = load(path)
    try:
        for operation in journal:
            shard.update(operation)
        shard.flush()
    except BaseException:
        shard.close()
        raise
    return shard


def _close_and_remove(shard: qe.EdgeShard, path: Path) -> None:
    shard.close()
    shutil.rmtree(path, ignore_errors=True)


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
