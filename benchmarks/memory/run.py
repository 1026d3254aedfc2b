"""Recall through gRPC on clustered vectors: queries per second and recall@10 against exact search,
plus Remember throughput and the time until a new memory is searchable.

    python -m benchmarks.memory              # 100,000 memories of 384 dimensions (minutes)
    python -m benchmarks.memory --quick      # 10,000 memories, a smoke run

The memory service runs in its own process (SQLite + Qdrant Edge, the embedded default) so the
client's work does not share its event loop. The corpus is loaded straight into the vector index in
batches; Remember is measured separately through gRPC.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.memory.adapters.edge_index import EdgeIndex
from hivemesh.memory.app import build_with
from hivemesh.memory.config import EmbedderKind, HnswSettings, MemoryConfig
from hivemesh.memory.model import Memory, Owner
from hivemesh.memory.v1 import memory_service_pb2 as pb
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer

Matrix = npt.NDArray[np.float32]
OWNER = Owner("bench", "user")
SCOPE = Scope(tenant_id=OWNER.tenant_id, user_id=OWNER.user_id, session_id="bench")


@dataclass(frozen=True)
class Options:
    n: int
    dimensions: int
    clusters: int
    queries: int
    concurrency: int
    remembers: int
    seed: int
    hnsw: HnswSettings


def clustered(rng: np.random.Generator, count: int, centers: Matrix, spread: float) -> Matrix:
    """Points scattered around random cluster centres, L2-normalised (like sentence embeddings)."""
    picks = rng.integers(0, len(centers), size=count)
    points = centers[picks] + spread * rng.standard_normal((count, centers.shape[1])).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def dataset(options: Options) -> tuple[Matrix, Matrix]:
    rng = np.random.default_rng(options.seed)
    centers = rng.standard_normal((options.clusters, options.dimensions)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    spread = 1.0 / np.sqrt(options.dimensions)
    return clustered(rng, options.n, centers, spread), clustered(rng, options.queries, centers, spread)


def memory_id(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def serve(options: Options, data_dir: str, ready: Any, stop: Any) -> None:
    asyncio.run(_serve(options, Path(data_dir), ready, stop))


async def _serve(options: Options, data_dir: Path, ready: Any, stop: Any) -> None:
    vectors, _ = dataset(options)
    settings = Settings.from_env({"HIVEMESH_DATA_DIR": str(data_dir), "HIVEMESH_METRICS_PORT": "off"})
    config = MemoryConfig(
        embedder=EmbedderKind.HASHING,
        hashing_dimensions=options.dimensions,
        dimensions=options.dimensions,
        hnsw=options.hnsw,
        # The benchmark builds the graph itself below, to time it.
        optimize_interval_s=3600,
    )
    index = EdgeIndex(data_dir / "qdrant", options.hnsw, options.dimensions)
    channels = ChannelFactory(settings)
    server = MeshServer(build_with(settings, channels, config, index=index), settings.server, 0, Metrics())
    await server.start()
    started = time.perf_counter()
    now = time.time()
    batch = 2000
    for start in range(0, options.n, batch):
        entries = [
            (
                Memory(memory_id(i), OWNER, "bench", f"memory {i}", {"cluster": "x"}, 1, now, now),
                vectors[i].tolist(),
            )
            for i in range(start, min(start + batch, options.n))
        ]
        await index.upsert(entries)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    await index.maintain()
    built = time.perf_counter() - started
    ready.put({"port": server.port, "load_s": loaded, "build_s": built})
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    await server.stop(1.0)
    await channels.close()


async def recall_rounds(
    stub: Any, queries: Matrix, concurrency: int, top_k: int = 10
) -> tuple[float, list[list[str]]]:
    results: list[list[str]] = [[] for _ in range(len(queries))]
    cursor = iter(range(len(queries)))

    async def worker() -> None:
        for q in cursor:
            request = pb.RecallRequest(
                scope=SCOPE, vector=pb.QueryVector(values=queries[q].tolist()), top_k=top_k
            )
            response = await stub.Recall(request)
            results[q] = [h.memory.memory_id for h in response.hits]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, results


async def remember_rounds(stub: Any, count: int, concurrency: int) -> tuple[float, float]:
    """Remember throughput, then the median time from a Remember's start until Recall finds it."""
    cursor = iter(range(count))

    async def worker() -> None:
        for i in cursor:
            await stub.Remember(
                pb.RememberRequest(scope=SCOPE, text=f"benchmark fact {i} about item{i} kind{i % 97}")
            )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    delays: list[float] = []
    for i in range(20):
        text = f"freshly learned detail number{i} quokka{i}"
        began = time.perf_counter()
        made = await stub.Remember(pb.RememberRequest(scope=SCOPE, text=text))
        while True:
            found = await stub.Recall(pb.RecallRequest(scope=SCOPE, text=text, top_k=1))
            if found.hits and found.hits[0].memory.memory_id == made.memory.memory_id:
                break
        delays.append(time.perf_counter() - began)
    return count / elapsed, float(np.median(delays))


async def measure(options: Options, port: int) -> dict[str, float]:
    vectors, queries = dataset(options)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    truth = [{memory_id(int(i)) for i in row} for row in exact]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = MemoryServiceStub(channel)
        await recall_rounds(stub, queries[: min(200, len(queries))], options.concurrency)  # warm-up
        elapsed, results = await recall_rounds(stub, queries, options.concurrency)
        recall = float(np.mean([len(truth[q] & set(results[q])) / 10 for q in range(len(queries))]))
        remember_qps, searchable_s = await remember_rounds(stub, options.remembers, options.concurrency)
    return {
        "recall_qps": len(queries) / elapsed,
        "recall_at_10": recall,
        "remember_qps": remember_qps,
        "searchable_s": searchable_s,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 memories and fewer queries")
    parser.add_argument("--n", type=int, default=100_000, help="memories in the store")
    parser.add_argument("--dimensions", type=int, default=384)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8, help="Recall calls in flight")
    parser.add_argument("--remembers", type=int, default=1000)
    parser.add_argument("--m", type=int, default=16, help="HNSW edges per node")
    parser.add_argument("--ef-construct", type=int, default=128)
    parser.add_argument("--ef", type=int, default=64, help="HNSW candidates per query")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    n = 10_000 if args.quick else args.n
    options = Options(
        n=n,
        dimensions=args.dimensions,
        clusters=max(10, n // 100),
        queries=500 if args.quick else args.queries,
        concurrency=args.concurrency,
        remembers=200 if args.quick else args.remembers,
        seed=args.seed,
        hnsw=HnswSettings(m=args.m, ef_construct=args.ef_construct, ef=args.ef),
    )
    context = mp.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    with tempfile.TemporaryDirectory() as data_dir:
        child = context.Process(target=serve, args=(options, data_dir, ready, stop))
        child.start()
        try:
            served = ready.get(timeout=3600)
            figures = asyncio.run(measure(options, served["port"]))
        finally:
            stop.set()
            child.join(30)
    h = options.hnsw
    print(
        f"memory benchmark: {options.n:,} memories x {options.dimensions} dims, {options.clusters} clusters"
    )
    print(f"  index: Qdrant Edge HNSW m={h.m} ef_construct={h.ef_construct} ef={h.ef}, cosine")
    print(
        f"  load into index:        {served['load_s']:8.1f} s ({options.n / served['load_s']:,.0f} vectors/s)"
    )
    print(f"  HNSW build (background): {served['build_s']:7.1f} s")
    print(
        f"  Recall via gRPC:        {figures['recall_qps']:8.0f} /s  ({options.queries} queries, "
        f"{options.concurrency} in flight, top_k=10)"
    )
    print(f"  recall@10 vs exact:     {figures['recall_at_10']:8.3f}")
    print(f"  Remember via gRPC:      {figures['remember_qps']:8.0f} /s  (hashing encoder, dedup search)")
    print(
        f"  new memory searchable:  {figures['searchable_s'] * 1000:8.1f} ms after Remember starts (median)"
    )


if __name__ == "__main__":
    main()
