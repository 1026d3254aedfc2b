"""Recall through gRPC on clustered vectors: queries per second and recall@10 against exact search,
plus Remember throughput and the time until a new memory is searchable.

    python -m benchmarks.memory              # 100,000 memories of 384 dimensions (a few minutes)
    python -m benchmarks.memory --quick      # 10,000 memories, a smoke run

The memory service runs as in production: ``hivemesh serve memory`` in its own process (SQLite +
Qdrant Edge, the embedded default), configured through its environment. The load generator runs in
this process and, for the Recall sweep, in one or more client processes of its own.

The corpus is prepared before the server starts: this process writes the vectors into a Qdrant Edge
store in the server's data directory with the service's own index adapter, builds the HNSW graph
(timed), and records the same memories in the service's SQL ledger, exactly as Remember would leave
them. The server then opens that directory, graph included. Remember is measured through gRPC.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from benchmarks.serving import served
from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.memory.adapters.edge_index import EdgeIndex, default_search_threads
from hivemesh.memory.adapters.tables import changes, items
from hivemesh.memory.config import HnswSettings
from hivemesh.memory.model import ChangeAction, Memory, Owner
from hivemesh.memory.runtime import MIGRATIONS, VERSION_TABLE
from hivemesh.memory.v1 import memory_service_pb2 as pb
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.sql import make_engine, run_migrations, sqlite_url

Matrix = npt.NDArray[np.float32]
OWNER = Owner("bench", "user")
SCOPE = Scope(tenant_id=OWNER.tenant_id, user_id=OWNER.user_id, session_id="bench")
# Separate channels must not share one TCP connection (grpc pools subchannels process-wide).
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


@dataclass(frozen=True)
class Load:
    """One Recall load setting: client processes x channels per process, calls in flight in all."""

    processes: int
    channels: int
    in_flight: int

    @staticmethod
    def parse(text: str) -> Load:
        processes, channels, in_flight = (int(part) for part in text.lower().split("x"))
        if min(processes, channels, in_flight) < 1 or in_flight < processes * channels:
            raise ValueError(f"bad load {text!r}: want PxCxF with F >= P*C >= 1")
        return Load(processes, channels, in_flight)

    def __str__(self) -> str:
        return (
            f"{self.processes} client process{'es' if self.processes > 1 else ''} x "
            f"{self.channels} channel{'s' if self.channels > 1 else ''}, {self.in_flight} in flight"
        )


@dataclass(frozen=True)
class Options:
    n: int
    dimensions: int
    clusters: int
    queries: int
    passes: int
    loads: tuple[Load, ...]
    concurrency: int
    remembers: int
    seed: int
    hnsw: HnswSettings
    # Of the n memories, this many are left unindexed for the server's own indexer to build.
    fresh: int = 0


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


def exact_top10(vectors: Matrix, queries: Matrix) -> list[set[str]]:
    truth: list[set[str]] = []
    for start in range(0, len(queries), 256):
        scores = queries[start : start + 256] @ vectors.T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        truth.extend({memory_id(int(i)) for i in row} for row in top)
    return truth


# ---- preparing the data directory -----------------------------------------------------------------


async def prepare(options: Options, vectors: Matrix, data_dir: Path) -> dict[str, float]:
    """Write the corpus where ``hivemesh serve memory`` will find it; returns the timings.

    The first ``n - fresh`` vectors are indexed here (timed: the same out-of-process build the
    server's indexer runs); the last ``fresh`` are stored unindexed, for the server to build while
    it answers Recall."""
    now = time.time()
    memories = [
        Memory(memory_id(i), OWNER, "bench", f"memory {i}", {"cluster": "x"}, 1, now, now)
        for i in range(options.n)
    ]
    index = EdgeIndex(data_dir / "qdrant", options.hnsw, options.dimensions)
    await index.open()
    built = options.n - options.fresh

    async def load(start: int, stop: int) -> None:
        for first in range(start, stop, 2000):
            last = min(first + 2000, stop)
            await index.upsert([(memories[i], vectors[i].tolist()) for i in range(first, last)])

    started = time.perf_counter()
    await load(0, built)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    await index.rebuild()
    build_s = time.perf_counter() - started
    await load(built, options.n)
    await index.close()
    started = time.perf_counter()
    await _ledger(memories, data_dir)
    ledger = time.perf_counter() - started
    return {"load_s": loaded, "build_s": build_s, "ledger_s": ledger, "built": float(built)}


async def _ledger(memories: Sequence[Memory], data_dir: Path) -> None:
    """The ledger rows (and REMEMBERED history) the service's SqlLedger writes for each memory."""
    engine = make_engine(sqlite_url(data_dir / "memory.db"))
    try:
        await run_migrations(engine, MIGRATIONS, VERSION_TABLE)
        async with engine.begin() as conn:
            for start in range(0, len(memories), 10_000):
                chunk = memories[start : start + 10_000]
                await conn.execute(
                    items.insert(),
                    [
                        {
                            "memory_id": m.memory_id,
                            "tenant_id": m.owner.tenant_id,
                            "user_id": m.owner.user_id,
                            "session_id": m.session_id,
                            "text": m.text,
                            "metadata": json.dumps(dict(m.metadata), sort_keys=True),
                            "version": m.version,
                            "create_time": m.create_time,
                            "update_time": m.update_time,
                            "expire_at": None,
                        }
                        for m in chunk
                    ],
                )
                await conn.execute(
                    changes.insert(),
                    [
                        {
                            "memory_id": m.memory_id,
                            "tenant_id": m.owner.tenant_id,
                            "user_id": m.owner.user_id,
                            "version": m.version,
                            "action": ChangeAction.REMEMBERED.value,
                            "text": m.text,
                            "time": m.update_time,
                            "request_id": None,
                        }
                        for m in chunk
                    ],
                )
    finally:
        await engine.dispose()


# ---- Recall load: client processes ----------------------------------------------------------------


def recall_client(
    address: str,
    queries: Matrix,
    positions: list[int],
    passes: int,
    load: Load,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    """One client process: ``load.channels`` channels, its share of the calls in flight."""
    out.put(asyncio.run(_recall_client(address, queries, positions, passes, load, ready, go)))


async def _recall_client(
    address: str, queries: Matrix, positions: list[int], passes: int, load: Load, ready: Any, go: Any
) -> dict[str, Any]:
    requests = {
        q: pb.RecallRequest(scope=SCOPE, vector=pb.QueryVector(values=queries[q].tolist()), top_k=10)
        for q in positions
    }
    channels = [grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) for _ in range(load.channels)]
    stubs = [MemoryServiceStub(c) for c in channels]
    per_process = load.in_flight // load.processes
    # Spread this process's share of the in-flight calls over its channels, round robin.
    workers = [stubs[w % len(stubs)] for w in range(per_process)]
    results: dict[int, list[str]] = {}

    async def run(order: list[int]) -> None:
        cursor = iter(order)

        async def worker(stub: Any) -> None:
            for q in cursor:
                response = await stub.Recall(requests[q])
                results[q] = [h.memory.memory_id for h in response.hits]

        await asyncio.gather(*(worker(s) for s in workers))

    try:
        await run(positions[: max(50, len(positions) // 10)])  # warm-up: connections, caches
        ready.wait()
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        started = time.monotonic()
        await run(positions * passes)
        ended = time.monotonic()
    finally:
        for channel in channels:
            await channel.close(None)
    return {"started": started, "ended": ended, "calls": len(positions) * passes, "results": results}


def recall_load(
    address: str, queries: Matrix, truth: list[set[str]], passes: int, load: Load
) -> dict[str, float]:
    """Recall/s over all client processes (first start to last end) and recall@10."""
    context = mp.get_context("spawn")
    ready, go, out = context.Barrier(load.processes + 1), context.Event(), context.Queue()
    shares = [list(range(p, len(queries), load.processes)) for p in range(load.processes)]
    clients = [
        context.Process(
            target=recall_client, args=(address, queries, shares[p], passes, load, ready, go, out)
        )
        for p in range(load.processes)
    ]
    for client in clients:
        client.start()
    try:
        ready.wait(timeout=300)
        go.set()
        reports = [out.get(timeout=600) for _ in clients]
    finally:
        for client in clients:
            client.join(30)
    results: dict[int, list[str]] = {}
    for report in reports:
        results.update(report["results"])
    elapsed = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
    calls = sum(r["calls"] for r in reports)
    recall = float(np.mean([len(truth[q] & set(results[q])) / 10 for q in range(len(queries))]))
    return {"recall_qps": calls / elapsed, "recall_at_10": recall, "calls": calls}


# ---- Remember, from this process ------------------------------------------------------------------


async def remember_rounds(address: str, count: int, concurrency: int) -> tuple[float, float]:
    """Remember throughput, then the median time from a Remember's start until Recall finds it."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = MemoryServiceStub(channel)
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


def live_shard(data_dir: Path) -> str:
    """The shard directory the server's index currently serves from (it changes on a swap)."""
    return str(json.loads((data_dir / "qdrant" / "index.json").read_text())["shard"])


async def during_build(address: str, data_dir: Path, in_flight: int, give_up_s: float) -> dict[str, float]:
    """Recall traffic from the moment the server is ready until its indexer has built the fresh
    vectors and swapped the built copy in; returns the window's length and the calls' latencies."""
    first = live_shard(data_dir)
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = MemoryServiceStub(channel)
        request = pb.RecallRequest(scope=SCOPE, text="a question while the index is being built", top_k=10)
        began = time.perf_counter()
        deadline = began + give_up_s

        async def client() -> None:
            while live_shard(data_dir) == first and time.perf_counter() < deadline:
                sent = time.perf_counter()
                await stub.Recall(request)
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(client() for _ in range(in_flight)))
        window = time.perf_counter() - began
    if live_shard(data_dir) == first:
        raise RuntimeError(f"the server's indexer did not swap a built index in within {give_up_s:.0f}s")
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    return {
        "window_s": window,
        "calls": float(len(latencies)),
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "max_ms": max(latencies) * 1000,
    }


# ---- the run ---------------------------------------------------------------------------------------


# Concurrent Recalls kept up while the server's indexer builds (a light, steady load).
BUILD_PROBE_IN_FLIGHT = 4


def server_env(options: Options) -> dict[str, str]:
    h = options.hnsw
    return {
        "HIVEMESH_MEMORY_EMBEDDER": "hashing",
        "HIVEMESH_MEMORY_HASHING_DIMENSIONS": str(options.dimensions),
        "HIVEMESH_MEMORY_DIMENSIONS": str(options.dimensions),
        "HIVEMESH_MEMORY_HNSW_M": str(h.m),
        "HIVEMESH_MEMORY_HNSW_EF_CONSTRUCT": str(h.ef_construct),
        "HIVEMESH_MEMORY_HNSW_EF": str(h.ef),
    }


def say(label: str, figure: str, note: str = "") -> None:
    print(f"  {label:<26}{figure:>12}{'  ' + note if note else ''}")


async def benchmark(options: Options) -> None:
    vectors, queries = dataset(options)
    started = time.perf_counter()
    truth = exact_top10(vectors, queries)
    exact_s = time.perf_counter() - started
    h = options.hnsw
    print(
        f"memory benchmark: {options.n:,} memories x {options.dimensions} dims, {options.clusters} clusters"
    )
    print(f"  index: Qdrant Edge HNSW m={h.m} ef_construct={h.ef_construct} ef={h.ef}, cosine")
    threads = os.environ.get("HIVEMESH_MEMORY_SEARCH_THREADS") or f"{default_search_threads()} (default)"
    print(f"  server: hivemesh serve memory in its own process, Qdrant Edge search threads {threads}")
    say("exact top-10 (numpy)", f"{exact_s:.1f} s", f"{options.queries:,} queries")
    with tempfile.TemporaryDirectory(prefix="hivemesh-memory-bench-") as directory:
        data_dir = Path(directory)
        prepared = await prepare(options, vectors, data_dir)
        load_s = prepared["load_s"]
        say("load into index", f"{load_s:.1f} s", f"{options.n / load_s:,.0f} vectors/s")
        say(
            "HNSW build",
            f"{prepared['build_s']:.1f} s",
            f"{prepared['built']:,.0f} vectors: copy, build in a child process, swap in",
        )
        say("ledger rows (SQLite)", f"{prepared['ledger_s']:.1f} s")
        began = time.perf_counter()
        async with served("memory", server_env(options), data_dir=data_dir) as address:
            say("server ready", f"{time.perf_counter() - began:.1f} s", "opens the built graph")
            if options.fresh:
                print(
                    f"  the server's indexer builds the {options.fresh:,} unindexed memories (first round "
                    f"5 s after start) while Recall by text runs, {BUILD_PROBE_IN_FLIGHT} in flight:"
                )
                probe = await during_build(address, data_dir, BUILD_PROBE_IN_FLIGHT, give_up_s=1800.0)
                answered = f"{probe['calls']:,.0f} Recalls answered meanwhile"
                say("  start to swap", f"{probe['window_s']:.1f} s", answered)
                say(
                    "  Recall latency",
                    f"{probe['p50_ms']:.1f} ms",
                    f"p50; p99 {probe['p99_ms']:.1f} ms, longest {probe['max_ms']:.0f} ms",
                )
            print(f"  Recall by vector via gRPC, top_k=10, {options.queries:,} queries x {options.passes}:")
            best: dict[str, float] | None = None
            for load in options.loads:
                figures = await asyncio.to_thread(recall_load, address, queries, truth, options.passes, load)
                say(
                    f"  {load.processes}x{load.channels}x{load.in_flight}",
                    f"{figures['recall_qps']:.0f} /s",
                    f"recall@10 {figures['recall_at_10']:.3f}  ({load})",
                )
                if best is None or figures["recall_qps"] > best["recall_qps"]:
                    best = figures
            remembered = await remember_rounds(address, options.remembers, options.concurrency)
    remember_qps, searchable_s = remembered
    if best is not None:
        say("best Recall via gRPC", f"{best['recall_qps']:.0f} /s", f"recall@10 {best['recall_at_10']:.3f}")
    say(
        "Remember via gRPC",
        f"{remember_qps:.0f} /s",
        f"hashing encoder, dedup search, SQLite ledger, {options.concurrency} in flight",
    )
    say("new memory searchable", f"{searchable_s * 1000:.1f} ms", "after the Remember starts (median)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 memories and fewer queries")
    parser.add_argument("--n", type=int, default=100_000, help="memories in the store")
    parser.add_argument("--dimensions", type=int, default=384)
    parser.add_argument("--queries", type=int, default=2000, help="distinct Recall queries")
    parser.add_argument("--passes", type=int, default=3, help="times each query is sent while timing")
    parser.add_argument(
        "--loads",
        default="1x1x8,1x4x16,2x2x16,2x4x32",
        help="Recall load settings, PxCxF: P client processes x C channels each, F calls in flight in all",
    )
    parser.add_argument(
        "--fresh",
        type=int,
        default=10_000,
        help="of the memories, how many the server's own indexer builds while Recall runs (0: none)",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="Remember calls in flight")
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
        passes=args.passes,
        loads=tuple(Load.parse(part) for part in args.loads.split(",") if part.strip()),
        concurrency=args.concurrency,
        remembers=200 if args.quick else args.remembers,
        seed=args.seed,
        hnsw=HnswSettings(m=args.m, ef_construct=args.ef_construct, ef=args.ef),
        fresh=7_000 if args.quick else args.fresh,
    )
    due = options.hnsw.points_per_build(options.dimensions)
    if options.fresh and not due <= options.fresh < options.n:
        parser.error(f"--fresh must be 0 or from {due} (enough to start a build) to below --n")
    asyncio.run(benchmark(options))


if __name__ == "__main__":
    main()
