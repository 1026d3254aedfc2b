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
import ctypes
import json
import os
import signal
import sys

import qdrant_edge as qe

# Niceness of the builder: serving requests goes first, the build takes what CPU is left.
BUILD_NICENESS = 10
# prctl(2) option: the signal this process gets when its parent thread exits.
_PR_SET_PDEATHSIG = 1


def build(directory: str) -> dict[str, object]:
    shard = qe.EdgeShard.load(directory)
    try:
        optimized = shard.optimize()
        info = shard.info()
        shard.flush()
    finally:
        shard.close()
    return {"optimized": optimized, "points": info.points_count, "indexed": info.indexed_vectors_count}


def end_with_parent() -> None:
    """On Linux, have the kernel end this process when its parent (the server) dies: a build for a
    server that is gone would only hold CPU and a lock on a copy the next start removes."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took effect
        raise SystemExit("the server that asked for this build has exited")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hivemesh.memory.adapters.edge_build")
    parser.add_argument("directory", help="a Qdrant Edge shard directory no other process has open")
    args = parser.parse_args(argv)
    end_with_parent()
    with contextlib.suppress(OSError):  # a platform without niceness builds at normal priority
        os.nice(BUILD_NICENESS)
    print(json.dumps(build(args.directory)), flush=True)  # the parent reads this line


if __name__ == "__main__":
    main()
