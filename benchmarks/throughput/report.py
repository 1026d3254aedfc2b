"""The table (and its JSON) of a throughput run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import platform
from pathlib import Path

from benchmarks.throughput.run import Options, Row

COLUMNS = (
    ("topology", 11, "<"),
    ("load", 24, "<"),
    ("tasks/s", 8, ">"),
    ("p50 ms", 7, ">"),
    ("p95 ms", 7, ">"),
    ("p99 ms", 7, ">"),
    ("errors", 6, ">"),
    ("wrong", 5, ">"),
    ("CPU ms/task", 11, ">"),
    ("SQL tx/task", 11, ">"),
    ("RPCs/task", 9, ">"),
    ("vs floor", 8, ">"),
)


def machine() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_at_end": " ".join(load),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _number(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if digits and abs(value) >= 100:
        digits = 0
    return f"{value:,.{digits}f}"


def _cells(row: Row) -> list[str]:
    report = row.report
    if row.phase is not None:
        phase = row.phase
        figures = [phase.tasks_per_s, phase.p50_ms, phase.p95_ms, phase.p99_ms]
        return [
            row.topology,
            row.load,
            *(_number(f) for f in figures),
            str(phase.failed),
            str(phase.wrong),
            *(["n/a"] * 4),
        ]
    if report is None:
        return [row.topology, row.load or "-"]
    return [
        row.topology,
        row.load,
        _number(report.tasks_per_s),
        _number(report.p50_ms),
        _number(report.p95_ms),
        _number(report.p99_ms),
        str(report.failed),
        str(report.wrong),
        _number(row.cpu_ms_per_task),
        _number(row.sql_transactions_per_task),
        _number(row.rpcs_per_task),
        "n/a" if row.vs_floor is None else f"{row.vs_floor:.2f}",
    ]


def _line(cells: list[str]) -> str:
    return "  ".join(
        f"{cell:{align}{width}}" for cell, (_name, width, align) in zip(cells, COLUMNS, strict=False)
    )


def _per_process(row: Row) -> str:
    parts = [f"{p.label} {_number(p.cpu_ms_per_task)} ms/{_number(p.rss_mb, 0)} MB" for p in row.processes]
    parts.append(f"load generator {_number(row.client_cpu_ms_per_task)} ms")
    return ", ".join(parts)


def table(rows: list[Row], options: Options) -> str:
    """The table: one line per point, and under it each process's CPU per task and resident memory."""
    lines = [_line([name for name, _w, _a in COLUMNS])]
    for row in rows:
        if row.phase is not None:
            lines.append(_line(_cells(row)))
            continue
        if row.report is None:
            lines.append(_line(_cells(row)) + f"  skipped: {row.skipped}")
            continue
        lines.append(_line(_cells(row)))
        detail = _per_process(row)
        if row.report.errors:
            detail += f"; errors {dict(sorted(row.report.errors.items()))}"
        if row.settle_s:
            detail += f"; queue empty for good {row.settle_s:.1f}s after the point"
        if row.vs_grpc is not None:
            detail += (
                f"; vs the gRPC gateway: {row.vs_grpc:.2f} of its tasks/s, added latency p50 "
                f"{row.added_p50_ms or 0.0:+.1f} ms, p99 {row.added_p99_ms or 0.0:+.1f} ms"
            )
        lines.append(f"{'':13}{detail}")
    lines += _rolling_summary(rows)
    info = machine()
    lines.append(
        f"\n{options.duration_s:g}s per point; task timeout {options.task_timeout_s:g}s; "
        f"{info['cpus']} CPUs ({info['cpu_model'] or 'unknown model'}), {info['system']}, "
        f"Python {info['python']}; load average at the end {info['load_average_at_end'] or 'n/a'}."
    )
    lines.append(
        "Per process: CPU ms per completed task / resident memory after the point. "
        "vs floor: tasks/s over the floor's at the same load. openai-door: the embedded mesh driven "
        "through POST /v1/chat/completions, against the embedded gRPC path at the same load."
    )
    return "\n".join(lines)


def _rolling_summary(rows: list[Row]) -> list[str]:
    """Under the rolling rows: the p99 with and without restarts side by side, and the audit."""
    phases = {r.phase.name: r.phase for r in rows if r.phase is not None}
    audit = next((r.audit for r in rows if r.audit is not None), None)
    if "steady" not in phases or "rolling" not in phases or audit is None:
        return []
    steady, rolling = phases["steady"], phases["rolling"]
    return [
        f"{'':13}rolling restarts: p99 {_number(rolling.p99_ms)} ms during the restarts, "
        f"{_number(steady.p99_ms)} ms without; {audit['restarts']} replicas replaced "
        f"({audit['clean_exits']} exited cleanly)",
        f"{'':13}task log: {audit['tasks_in_log']} tasks {audit['states']}, dead letters "
        f"{audit['dead_letters']}, completed other than once {audit['completions_not_once']}; tool calls "
        f"run other than once {audit['effects_not_once']}, runs no task asked for {audit['stray_effects']}",
    ]


def as_json(rows: list[Row], options: Options) -> dict[str, object]:
    out: list[dict[str, object]] = []
    for row in rows:
        item: dict[str, object] = {"topology": row.topology, "load": row.load}
        if row.phase is not None:
            item.update(dataclasses.asdict(row.phase), audit=row.audit)
        elif row.report is None:
            item["skipped"] = row.skipped
        else:
            item.update(row.report.as_dict())
            item.update(
                log_tasks=row.log_tasks,
                cpu_ms_per_task=row.cpu_ms_per_task,
                processes=[dataclasses.asdict(p) for p in row.processes],
                load_generator_cpu_ms_per_task=row.client_cpu_ms_per_task,
                rpcs_per_task=row.rpcs_per_task,
                sql_transactions_per_task=row.sql_transactions_per_task,
                sql_write_operations_per_task=row.sql_write_operations_per_task,
                vs_floor=row.vs_floor,
                vs_grpc=row.vs_grpc,
                added_p50_ms=row.added_p50_ms,
                added_p99_ms=row.added_p99_ms,
                settle_s=round(row.settle_s, 2),
            )
        out.append(item)
    return {"machine": machine(), "options": dataclasses.asdict(options), "rows": out}
