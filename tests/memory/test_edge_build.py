"""The embedded store builds its HNSW graph in a child process and swaps the built copy in.

These tests run the real builder (``python -m hivemesh.memory.adapters.edge_build``) on real Qdrant
Edge shards; where a test needs the build to wait, the builder is started behind a gate file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from hivemesh.memory.adapters.edge_index import BUILDER, EdgeIndex, IndexBuildFailed
from hivemesh.memory.config import HnswSettings
from hivemesh.memory.model import Memory, Owner

DIMENSIONS = 32
OWNER = Owner("acme", "ana")
OTHER = Owner("globex", "bo")
# 1 KiB of 32-dim float vectors: a build is due once 8 points are unindexed.
HNSW = HnswSettings(m=8, ef_construct=32, ef=32, indexing_threshold_kb=1)

# Waits for the gate file (first argument) to exist, writes its pid next to it, then runs the real
# builder on the shard directory (second argument).
GATED_BUILDER = """
import pathlib, os, sys, time
gate = pathlib.Path(sys.argv[1])
staged = gate.with_suffix(".staged")
staged.write_text(str(os.getpid()))
staged.rename(gate.with_suffix(".pid"))
deadline = time.monotonic() + 60
while not gate.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
from hivemesh.memory.adapters.edge_build import main
main([sys.argv[2]])
"""


def memory(i: int, owner: Owner = OWNER, version: int = 1) -> Memory:
    return Memory(str(uuid.UUID(int=i + 1)), owner, "s1", f"memory {i}", {"n": str(i)}, version, 1.0, 1.0)


def vectors(count: int, seed: int = 0) -> npt.NDArray[np.float32]:
    points = np.random.default_rng(seed).standard_normal((count, DIMENSIONS)).astype(np.float32)
    normalised: npt.NDArray[np.float32] = points / np.linalg.norm(points, axis=1, keepdims=True)
    return normalised


async def fill(index: EdgeIndex, data: npt.NDArray[np.float32], owner: Owner = OWNER, start: int = 0) -> None:
    await index.upsert([(memory(start + i, owner), data[i].tolist()) for i in range(len(data))])


async def top_ids(index: EdgeIndex, query: Sequence[float], owner: Owner = OWNER, k: int = 5) -> list[str]:
    hits = await index.search(owner, query, limit=k, filters={}, min_score=0.0, now=2.0)
    return [h.memory.memory_id for h in hits]


def gated(gate: Path) -> list[str]:
    return [sys.executable, "-c", GATED_BUILDER, str(gate)]


async def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait until ``condition()`` is true (polling), failing the test after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def shard_dirs(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_dir())


@asynccontextmanager
async def opened(
    directory: Path, *, dimensions: int = DIMENSIONS, builder: Sequence[str] = BUILDER
) -> AsyncIterator[EdgeIndex]:
    """An open index of the test settings, closed afterwards; ``dimensions=0`` reopens a store
    with the size it recorded."""
    index = EdgeIndex(directory, HNSW, dimensions, search_threads=1, builder=builder)
    await index.open()
    try:
        yield index
    finally:
        await index.close()


async def stored(directory: Path, data: npt.NDArray[np.float32]) -> None:
    """A store holding ``data`` (unindexed), closed."""
    async with opened(directory) as index:
        await fill(index, data)


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[EdgeIndex]:
    async with opened(tmp_path / "qdrant") as running:
        yield running


async def test_maintain_builds_the_graph_in_a_child_and_swaps_it_in(index: EdgeIndex, tmp_path: Path) -> None:
    data = vectors(400)
    await fill(index, data)
    before = [await top_ids(index, data[i].tolist()) for i in range(0, 400, 40)]
    assert index.info().indexed_vectors_count == 0

    await index.maintain()

    assert index.builds == 1
    info = index.info()
    assert (info.points_count, info.indexed_vectors_count) == (400, 400)
    # The graph answers as the exact search did (exact top 5 of well-separated random points).
    assert [await top_ids(index, data[i].tolist()) for i in range(0, 400, 40)] == before
    directory = tmp_path / "qdrant"
    assert shard_dirs(directory) == ["shard-1"]
    assert json.loads((directory / "index.json").read_text()) == {
        "dimensions": DIMENSIONS,
        "shard": "shard-1",
    }

    # Nothing new: the next round builds nothing.
    await index.maintain()
    assert index.builds == 1


async def test_a_few_new_points_do_not_start_a_build(index: EdgeIndex) -> None:
    await fill(index, vectors(5))  # below the 8-point threshold
    await index.maintain()
    assert index.builds == 0
    assert index.info().indexed_vectors_count == 0


async def test_the_built_store_reopens_with_its_graph(tmp_path: Path) -> None:
    directory = tmp_path / "qdrant"
    data = vectors(200)
    async with opened(directory) as first:
        await fill(first, data)
        await first.maintain()
        expected = await top_ids(first, data[7].tolist())

    async with opened(directory, dimensions=0) as again:
        assert again.dimensions == DIMENSIONS
        info = again.info()
        assert (info.points_count, info.indexed_vectors_count) == (200, 200)
        assert await top_ids(again, data[7].tolist()) == expected


async def test_writes_during_a_build_are_replayed_onto_the_built_copy(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with opened(tmp_path / "qdrant", builder=gated(gate)) as index:
        data = vectors(300)
        await fill(index, data[:200])
        build = asyncio.create_task(index.maintain())
        await until(lambda: index.building and gate.with_suffix(".pid").exists())

        # While the copy is being built: new memories, a forgotten one, a newer version, another tenant.
        await fill(index, data[200:260], start=200)
        await index.delete(OWNER, [memory(3).memory_id])
        updated = memory(5, version=2)
        await index.upsert([(updated, data[5].tolist())])
        stale = memory(6, version=1)
        await index.upsert([(memory(6, version=3), data[6].tolist())])
        await index.upsert([(stale, data[6].tolist())])  # older than what is stored: ignored
        await fill(index, data[260:300], owner=OTHER, start=260)
        # Searches are answered from the live shard meanwhile, new points included.
        assert (await top_ids(index, data[210].tolist()))[0] == memory(210).memory_id

        gate.touch()
        await build

        assert index.builds == 1
        assert not index.building
        assert index.info().points_count == 299
        assert (await top_ids(index, data[230].tolist()))[0] == memory(230).memory_id
        assert memory(3).memory_id not in await top_ids(index, data[3].tolist())
        hits = await index.search(OWNER, data[5].tolist(), limit=1, filters={}, min_score=0.0, now=2.0)
        assert hits[0].memory.version == 2
        hits = await index.search(OWNER, data[6].tolist(), limit=1, filters={}, min_score=0.0, now=2.0)
        assert hits[0].memory.version == 3
        # The other tenant's memories arrived during the build and stay theirs alone.
        assert (await top_ids(index, data[270].tolist(), owner=OTHER))[0] == memory(270).memory_id
        assert memory(270).memory_id not in await top_ids(index, data[270].tolist(), k=50)


async def test_the_service_keeps_answering_while_the_real_builder_runs(index: EdgeIndex) -> None:
    data = vectors(3000)
    await fill(index, data)
    answered_during_build = 0
    build = asyncio.create_task(index.maintain())
    await until(lambda: index.building)
    while index.building:
        assert await top_ids(index, data[answered_during_build % 3000].tolist(), k=1)
        answered_during_build += 1
        await asyncio.sleep(0)
    await build
    assert index.builds == 1
    # An in-process build would hold the GIL (and this loop) for all of it; here the searches go on.
    assert answered_during_build > 0


@pytest.mark.parametrize(
    ("script", "failure"),
    [
        pytest.param("import sys; sys.exit('no space left for the build')", "no space left", id="exits-1"),
        # Exits 0 but leaves nothing to load.
        pytest.param("import shutil, sys; shutil.rmtree(sys.argv[1])", "could not be loaded", id="no-copy"),
    ],
)
async def test_a_failed_build_leaves_the_live_index_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, script: str, failure: str
) -> None:
    directory = tmp_path / "qdrant"
    async with opened(directory, builder=[sys.executable, "-c", script]) as index:
        data = vectors(100)
        await fill(index, data)
        with pytest.raises(IndexBuildFailed, match=failure):
            await index.rebuild()
        with caplog.at_level(logging.WARNING, logger="hivemesh.memory.adapters.edge_index"):
            await index.maintain()  # logs, does not raise
        assert "index build failed" in caplog.text
        assert index.builds == 0
        assert not index.building
        assert shard_dirs(directory) == ["shard-0"]  # the copies were removed
        assert json.loads((directory / "index.json").read_text())["shard"] == "shard-0"
        assert index.info().points_count == 100
        assert (await top_ids(index, data[42].tolist()))[0] == memory(42).memory_id
        await fill(index, vectors(3, seed=1), start=100)
        assert index.info().points_count == 103


async def test_one_build_at_a_time(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with opened(tmp_path / "qdrant", builder=gated(gate)) as index:
        await fill(index, vectors(20))
        first = asyncio.create_task(index.rebuild())
        await until(lambda: index.building)
        with pytest.raises(RuntimeError, match="already running"):
            await index.rebuild()
        gate.touch()
        await first
        assert index.builds == 1


async def test_stopping_during_a_build_kills_the_builder(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    directory = tmp_path / "qdrant"
    async with opened(directory, builder=gated(gate)) as index:
        await fill(index, vectors(50))
        build = asyncio.create_task(index.maintain())
        pid_file = gate.with_suffix(".pid")
        await until(pid_file.exists)
        pid = int(pid_file.read_text())
        build.cancel()
        with pytest.raises(asyncio.CancelledError):
            await build
        assert not index.building
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert shard_dirs(directory) == ["shard-0"]
        assert index.info().points_count == 50


async def test_open_removes_a_copy_left_by_an_interrupted_build(tmp_path: Path) -> None:
    directory = tmp_path / "qdrant"
    await stored(directory, vectors(20))
    (directory / "shard-1" / "segments").mkdir(parents=True)  # a crash mid-build left this

    async with opened(directory, dimensions=0) as again:
        assert shard_dirs(directory) == ["shard-0"]
        assert again.info().points_count == 20


async def test_a_store_from_before_shard_generations_opens_and_builds(tmp_path: Path) -> None:
    directory = tmp_path / "qdrant"
    data = vectors(60)
    await stored(directory, data)
    # The earlier layout: one directory named "shard", index.json without a shard name.
    (directory / "shard-0").rename(directory / "shard")
    (directory / "index.json").write_text(json.dumps({"dimensions": DIMENSIONS}))

    async with opened(directory, dimensions=0) as legacy:
        assert (await top_ids(legacy, data[9].tolist()))[0] == memory(9).memory_id
        await legacy.maintain()
        assert legacy.builds == 1
        assert shard_dirs(directory) == ["shard-1"]
        assert legacy.info().indexed_vectors_count == 60
        assert (await top_ids(legacy, data[9].tolist()))[0] == memory(9).memory_id


# A "server" that starts a builder-like child which asks to end with its parent, reports the
# child's pid, then dies without cleaning up.
ORPHANING_PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE, text=True)
print(child.stdout.readline().strip(), flush=True)
import os
os._exit(0)
"""
WAITING_CHILD = """
import os, time
from hivemesh.memory.adapters.edge_build import end_with_parent
end_with_parent()
print(os.getpid(), flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")
async def test_a_builder_ends_when_the_server_dies() -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ORPHANING_PARENT, WAITING_CHILD, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await parent.communicate()
    child = int(out.decode().strip())
    await until(lambda: not _alive(child), seconds=20)
