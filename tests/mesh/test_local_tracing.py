"""Spans of an in-process call are those of a gRPC call: a client span in the caller, a server span
in the callee (its child, in the same trace), each hop on."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tests.mesh.hop import PATHS

ROOT = Path(__file__).resolve().parents[2]
TOOL_CALL = "/hivemesh.tool.v1.ToolService/InvokeTool"
MEMORY_CALL = "/hivemesh.memory.v1.MemoryService/GetContext"


async def trace_a_call(path: str, trace_file: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.mesh.traced_hop", path, str(trace_file), cwd=ROOT
    )
    assert await asyncio.wait_for(process.wait(), 60) == 0


def spans_in(trace_file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in trace_file.read_text().splitlines() if line.strip()]


def tree(spans: list[dict[str, Any]]) -> set[tuple[str, str, str | None]]:
    """Each span as (name, kind, name of its parent), after checking they form one trace."""
    assert len({s["trace_id"] for s in spans}) == 1
    by_id = {s["span_id"]: s for s in spans}
    return {(s["name"], s["kind"], by_id[s["parent_id"]]["name"] if s["parent_id"] else None) for s in spans}


async def test_both_paths_produce_the_same_spans(tmp_path: Path) -> None:
    files = [tmp_path / f"{path}.jsonl" for path in PATHS]
    await asyncio.gather(*(trace_a_call(path, file) for path, file in zip(PATHS, files, strict=True)))
    expected = {
        ("caller", "INTERNAL", None),
        (TOOL_CALL, "CLIENT", "caller"),
        (TOOL_CALL, "SERVER", TOOL_CALL),
        (MEMORY_CALL, "CLIENT", TOOL_CALL),
        (MEMORY_CALL, "SERVER", MEMORY_CALL),
    }
    for file in files:
        spans = spans_in(file)
        assert tree(spans) == expected
        servers = [s for s in spans if s["kind"] == "SERVER"]
        for span in servers:
            assert span["attributes"]["rpc.system"] == "grpc"
            assert span["attributes"]["rpc.grpc.status_code"] == 0
        assert {s["attributes"]["rpc.method"] for s in servers} == {"InvokeTool", "GetContext"}
