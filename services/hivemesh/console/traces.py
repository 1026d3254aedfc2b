"""The spans of a task, for the console's waterfall: read back from the JSON-lines file the mesh
writes finished spans to (``HIVEMESH_TRACE_FILE``, one object per span; see
``hivemesh.mesh.telemetry.JsonLinesSpanExporter``).

A task's run is the ``invoke_agent`` span that names it (``hivemesh.task.id``); its trace is
every span with that span's trace id (the gateway's, the worker's and those of the calls it
made, in every process that writes to the file). Only the newest ``max_bytes`` of the file are
read, so a long-lived file costs a bounded read; older tasks' spans are then out of reach (and the
answer says how much was read).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hivemesh.mesh import genai

# The attribute by which a span names the task it ran.
TASK_ATTRIBUTE = genai.TASK_ID
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
# Spans kept for one task's waterfall at most (a task with a runaway loop of calls).
MAX_SPANS = 2000


@dataclass(frozen=True)
class TaskTrace:
    spans: list[dict[str, Any]]
    # How much of the file was read, and whether that was all of it.
    read_bytes: int
    whole_file: bool


def _tail_lines(path: Path, max_bytes: int) -> tuple[list[str], int, bool]:
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            f.seek(start)
            data = f.read()
    except FileNotFoundError:
        return [], 0, True
    lines = data.decode("utf-8", errors="replace").splitlines()
    if start > 0 and lines:
        lines = lines[1:]  # the first line read may begin mid-span
    return lines, len(data), start == 0


def _spans_of(task_id: str, lines: list[str]) -> list[dict[str, Any]]:
    spans = []
    for line in lines:
        if not line.strip():
            continue
        try:
            span = json.loads(line)
        except ValueError:
            continue  # a line cut by a concurrent writer
        if isinstance(span, dict) and isinstance(span.get("trace_id"), str):
            spans.append(span)
    traces = {
        s["trace_id"]
        for s in spans
        if isinstance(s.get("attributes"), dict) and s["attributes"].get(TASK_ATTRIBUTE) == task_id
    }
    found = [s for s in spans if s["trace_id"] in traces]
    found.sort(key=lambda s: (s.get("start_ns") or 0, s.get("end_ns") or 0))
    return found[:MAX_SPANS]


class SpanFile:
    """The spans the mesh wrote to ``path``."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self._max_bytes = max_bytes

    async def trace_of(self, task_id: str) -> TaskTrace:
        lines, read, whole = await asyncio.to_thread(_tail_lines, self.path, self._max_bytes)
        return TaskTrace(_spans_of(task_id, lines), read, whole)
