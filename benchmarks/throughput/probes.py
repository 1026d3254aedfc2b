"""What the benchmark reads from the processes it runs: CPU time and resident memory from /proc, and
counters from each process's Prometheus endpoint."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

PROC = Path("/proc")
# RPCs handled by a server (every hivemesh process counts them; so does the floor).
RPC_COUNTER = "grpc_server_handled"
# SQL write transactions a process committed, and the write operations they carried.
SQL_COUNTER = "hivemesh_sql_transactions"
SQL_OPERATIONS = "hivemesh_sql_write_operations"
QUEUE_DEPTH = "hivemesh_queue_depth"
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def has_proc() -> bool:
    return (PROC / "self" / "stat").exists()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces; fields after it are plain.
    return text[text.rindex(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        threads = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    listed = False
    for thread in threads:
        try:
            found += [int(c) for c in (thread / "children").read_text().split()]
            listed = True
        except OSError:
            continue
    return found if listed else _children_by_parent(pid)


def _children_by_parent(pid: int) -> list[int]:
    """The slow way, for kernels without /proc/<pid>/task/<tid>/children."""
    found: list[int] = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:  # ppid, field 4
                found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and all its descendants, living or exited and reaped
    (a child's time moves to its parent's children counters when it is reaped, so the sum is
    continuous). None when the process is gone or /proc is not available."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the command: utime, stime, cutime, cstime are fields 14-17, i.e. indexes 11-14 here.
    total = sum(int(v) for v in fields[11:15]) / _TICKS
    for child in _children(pid):
        total += cpu_seconds(child) or 0.0
    return total


def rss_bytes(pid: int) -> int | None:
    """Resident memory of the process itself (not its children)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return int(fields[21]) * _PAGE  # rss, field 24, in pages


@dataclass(frozen=True)
class Counters:
    """Totals read from one metrics endpoint (None: the metric is not exported there)."""

    rpcs: float | None
    sql_transactions: float | None
    sql_operations: float | None
    queue_depth: float | None


async def scrape(client: httpx.AsyncClient, port: int) -> Counters:
    response = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0)
    response.raise_for_status()
    totals: dict[str, float] = {}
    counters = (RPC_COUNTER, SQL_COUNTER, SQL_OPERATIONS)
    wanted = {f"{name}_total" for name in counters} | {QUEUE_DEPTH}
    for family in text_string_to_metric_families(response.text):
        if family.name in counters:
            # Exported (possibly with no labelled sample yet): zero, not absent.
            totals.setdefault(f"{family.name}_total", 0.0)
        for sample in family.samples:
            if sample.name in wanted:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return Counters(
        rpcs=totals.get(f"{RPC_COUNTER}_total"),
        sql_transactions=totals.get(f"{SQL_COUNTER}_total"),
        sql_operations=totals.get(f"{SQL_OPERATIONS}_total"),
        queue_depth=totals.get(QUEUE_DEPTH),
    )
