"""Builds the HNSW graph of a Qdrant Edge shard in a process of its own.

    python -m hivemesh.memory.adapters.edge_build SHARD_DIR

The memory service runs this on a copy of its live shard (see ``edge_index.EdgeIndex.maintain``):
qdrant-edge holds the Python GIL for the whole of ``optimize``, so run in the serving process an
index build of 100,000 vectors would stop it answering anything for about a minute. Here the
build holds only this process's GIL, at a lower CPU priority than the server, and the server swaps
the built copy in when it is done.

Prints one JSON line on success: ``{"optimized": bool, "points": int, "indexed": int}``.
Imports nothing but qdrant-edge, so it starts quickly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os

import qdrant_edge as qe

# Niceness of the builder: serving requests goes first, the build takes what CPU is left.
BUILD_NICENESS = 10


def build(directory: str) -> dict[str, object]:
    shard = qe.EdgeShard.load(directory)
    try:
        optimized = shard.optimize()
        info = shard.info()
        shard.flush()
    finally:
        shard.close()
    return {"optimized": optimized, "points": info.points_count, "indexed": info.indexed_vectors_count}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hivemesh.memory.adapters.edge_build")
    parser.add_argument("directory", help="a Qdrant Edge shard directory no other process has open")
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):  # a platform without niceness builds at normal priority
        os.nice(BUILD_NICENESS)
    print(json.dumps(build(args.directory)), flush=True)  # the parent reads this line


if __name__ == "__main__":
    main()
