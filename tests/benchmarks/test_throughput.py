"""The throughput benchmark: a smoke run on real processes, and the parts it is built from."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from benchmarks.throughput import probes
from benchmarks.throughput.__main__ import main
from benchmarks.throughput.seed import seed_log
from benchmarks.throughput.workload import KINDS, Mix
from hivemesh.common.v1.task_pb2 import TaskState
from hivemesh.mesh.config import Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.system import TaskSystem
from tests.tasks.stores import postgres_database


def run_benchmark(capsys: pytest.CaptureFixture[str], *flags: str) -> list[dict[str, Any]]:
    assert main([*flags, "--json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)["rows"]
    return rows


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.timeout(400)
def test_rolling_restart_rows_put_the_p99_during_restarts_beside_the_p99_without(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = run_benchmark(
        capsys, "--quick", "--topologies", "none", "--rolling", "4", "--duration", "1",
        "--growth-tasks", "0", "--quiet",
    )  # fmt: skip
    assert [(r["topology"], r["load"]) for r in rows] == [
        ("rolling", "open 4/s, no restarts"),
        ("rolling", "open 4/s, during restarts"),
        ("rolling", "open 4/s, after restarts"),
    ]
    steady, rolling, _after = rows
    for row in (steady, rolling):
        assert row["completed"] == row["sent"] > 0, row
        assert row["failed"] == row["wrong"] == 0, row
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"], row
    audit = rolling["audit"]
    # Two replicas of each of the five services, each replaced once and drained cleanly.
    assert audit["restarts"] == audit["clean_exits"] == 10
    assert audit["states"] == {"COMPLETED": audit["tasks_in_log"]}
    assert audit["tasks_in_log"] == sum(r["sent"] for r in rows)
    assert audit["dead_letters"] == audit["effects_not_once"] == audit["completions_not_once"] == 0


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_quick_run_on_the_floor_and_the_embedded_mesh(capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_benchmark(
        capsys,
        "--quick",
        "--topologies",
        "floor,embedded",
        "--clients",
        "1,4",
        "--rates",
        "8",
        "--duration",
        "1",
        "--growth-tasks",
        "0",
        "--quiet",
    )
    assert [(r["topology"], r["load"]) for r in rows] == [
        (topology, load)
        for topology in ("floor", "embedded")
        for load in ("closed 1", "closed 4", "open 8/s")
    ]
    for row in rows:
        assert "skipped" not in row, row
        assert row["completed"] > 0, row
        assert row["errors"] == {}, row
        assert row["wrong"] == 0, row
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"], row
        # CPU time comes in clock ticks (10 ms): a short point may see none in a quiet process.
        assert row["cpu_ms_per_task"] > 0, row
        for process in row["processes"]:
            assert process["cpu_ms_per_task"] >= 0, row
            assert process["rss_mb"] > 10, row
    floor = [r for r in rows if r["topology"] == "floor"]
    embedded = [r for r in rows if r["topology"] == "embedded"]
    # The floor makes a task's seven calls (it listed the tools while warming up); the embedded
    # mesh its own: six for a calculation, five out of scope, more for memory and lists.
    assert {r["rpcs_per_task"] for r in floor} == {7.0}
    assert all(5 < r["rpcs_per_task"] < 8 for r in embedded)
    assert [len(r["processes"]) for r in floor] == [5, 5, 5]
    assert [len(r["processes"]) for r in embedded] == [1, 1, 1]
    # Every hivemesh task writes its log; the floor has no SQL at all.
    assert all(r["sql_transactions_per_task"] is None for r in floor)
    assert all(r["sql_transactions_per_task"] > 0 for r in embedded)
    assert all(r["sql_write_operations_per_task"] >= r["sql_transactions_per_task"] for r in embedded)
    assert all(r["vs_floor"] == 1.0 for r in floor)
    assert all(r["vs_floor"] > 0 for r in embedded)
    # The open loop started its tasks on schedule: 8 per second for 1 s.
    assert all(r["started"] == 8 for r in rows if r["mode"] == "open")


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_quick_run_through_the_openai_door_beside_the_grpc_path(capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--quick", "--topologies", "embedded,openai-door", "--clients", "2", "--rates", "none"]
    rows = run_benchmark(capsys, *flags, "--duration", "1", "--growth-tasks", "0", "--quiet")
    assert [(r["topology"], r["load"]) for r in rows] == [
        ("embedded", "closed 2"),
        ("openai-door", "closed 2"),
    ]
    grpc_path, door = rows
    for row in rows:
        assert "skipped" not in row, row
        assert row["completed"] > 0, row
        assert row["errors"] == {}, row
        assert row["wrong"] == 0, row
    # The same mesh behind the door: a task makes the same calls and writes the same log.
    assert 5 < door["rpcs_per_task"] < 8
    assert door["sql_transactions_per_task"] > 0
    # Compared in the same run, load for load.
    # (tasks/s and milliseconds are rounded in the JSON, the comparison is not.)
    assert door["vs_grpc"] == pytest.approx(door["tasks_per_s"] / grpc_path["tasks_per_s"], rel=0.01)
    assert door["added_p50_ms"] == pytest.approx(door["p50_ms"] - grpc_path["p50_ms"], abs=0.1)
    assert door["added_p99_ms"] == pytest.approx(door["p99_ms"] - grpc_path["p99_ms"], abs=0.1)
    assert grpc_path["vs_grpc"] is None


def test_an_unreachable_store_skips_the_topology_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_benchmark(
        capsys,
        "--topologies",
        "distributed",
        "--redis-url",
        "redis://127.0.0.1:1/0",
        "--clients",
        "1",
        "--quiet",
    )
    assert len(rows) == 1
    assert rows[0]["topology"] == "distributed"
    assert str(rows[0]["skipped"]).startswith("Redis not reachable at redis://127.0.0.1:1/0")


def test_the_table_shows_a_skipped_topology_with_its_reason(capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--topologies", "distributed", "--redis-url", "redis://127.0.0.1:1/0", "--quiet"]
    assert main(flags) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["topology", "load", "tasks/s"]
    assert "skipped: Redis not reachable at redis://127.0.0.1:1/0" in lines[1]


# ---- the mix ------------------------------------------------------------------------------------


def test_the_mix_takes_turns_across_kinds_with_new_users_except_for_recalls() -> None:
    mix = Mix()
    first, second = mix.workload(), mix.workload()
    requests = [first(n) for n in range(4 * len(KINDS))]
    later = [second(n) for n in range(len(KINDS))]
    fact_users = {fact.user_id for fact in mix.facts}
    asked = {fact.ask.text for fact in mix.facts}
    assert len(fact_users) == len(mix.facts) == 10
    for number, request in enumerate(requests + later):
        kind = KINDS[number % len(KINDS)]
        if kind == "recall":
            assert request.user_id in fact_users
            assert request.text in asked
        else:
            assert request.user_id not in fact_users
        assert "timer" not in request.text
        assert "remind" not in request.text
    others = [r.user_id for r in requests + later if r.user_id not in fact_users]
    assert len(others) == len(set(others))  # no user twice, even across measurements
    sessions = [(r.user_id, r.session_id) for r in requests + later]
    assert len(sessions) == len(set(sessions))
    # Every kind is there, each an eighth of the load.
    assert min(mix.sizes().values()) >= 6


def test_the_checks_are_the_agent_benchmarks_judgements() -> None:
    mix = Mix()
    calculation = mix.request(0)
    assert calculation.text == "what is 12 * (3 + 4)?"
    assert calculation.check is not None
    assert calculation.check("84")
    assert not calculation.check("85")


# ---- the probes ---------------------------------------------------------------------------------

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"


@pytest.fixture
def parent_of_a_busy_child() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose child burns 0.3 s of CPU and exits (reaped) while the parent sleeps on."""
    script = (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {BURN!r}], check=True)\n"
        "print('done', flush=True)\n"
        "time.sleep(30)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        yield process
    finally:
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()


def test_cpu_time_counts_children_that_have_exited(parent_of_a_busy_child: subprocess.Popen[bytes]) -> None:
    assert parent_of_a_busy_child.stdout is not None
    assert parent_of_a_busy_child.stdout.readline() == b"done\n"
    seconds = probes.cpu_seconds(parent_of_a_busy_child.pid)
    assert seconds is not None
    assert seconds >= 0.28
    rss = probes.rss_bytes(parent_of_a_busy_child.pid)
    assert rss is not None
    assert rss > 1_000_000


def test_cpu_time_counts_a_running_child() -> None:
    child = BURN + "time.sleep(30)\n"
    script = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {child!r}])\n"
    parent = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        seconds = 0.0
        while seconds < 0.28 and time.monotonic() < deadline:
            time.sleep(0.1)
            seconds = probes.cpu_seconds(parent.pid) or 0.0
        assert seconds >= 0.28  # the parent itself only waits
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_a_process_that_is_gone_has_no_figures() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert probes.cpu_seconds(process.pid) is None
    assert probes.rss_bytes(process.pid) is None


async def test_scrape_reads_hivemesh_metrics() -> None:
    metrics = Metrics()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    try:
        port = server.server_port
        async with httpx.AsyncClient() as client:
            empty = await probes.scrape(client, port)
            release = metrics.release
            tool = ("unary", "hivemesh.tool.v1.ToolService", "InvokeTool", "OK", release)
            metrics.rpc_total.labels(*tool).inc(3)
            metrics.rpc_total.labels(
                "unary", "hivemesh.memory.v1.MemoryService", "Recall", "NOT_FOUND", release
            ).inc()
            metrics.queue_depth.set(5)
            counted = await probes.scrape(client, port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert empty.rpcs == 0
    assert counted.rpcs == 4
    assert counted.queue_depth == 5
    # Every hivemesh process exports its SQL write tallies.
    assert counted.sql_transactions is not None
    assert counted.sql_operations is not None


async def test_scrape_says_when_a_counter_is_not_exported() -> None:
    registry = CollectorRegistry()
    calls = Counter("grpc_server_handled", "RPCs.", ["grpc_method"], registry=registry)
    calls.labels("Run").inc(2)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        async with httpx.AsyncClient() as client:
            counted = await probes.scrape(client, server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert counted.rpcs == 2
    assert counted.sql_transactions is None
    assert counted.sql_operations is None
    assert counted.queue_depth is None


# ---- seeding the log ----------------------------------------------------------------------------


async def check_seeded(settings: Settings, count: int, tenant_id: str) -> None:
    tasks = TaskSystem(settings, TaskConfig(sweep_interval_s=0))
    await tasks.start()
    try:
        assert await tasks.log.count_by_state() == {TaskState.TASK_STATE_COMPLETED: count}
        listed, _token = await tasks.log.list_tasks(tenant_id, page_size=count)
        assert len(listed) == count
        for task in listed[:5]:
            assert (await tasks.log.verify(task.task_id)).ok
            events = await tasks.log.read(task.task_id, 0)
            assert [e.WhichOneof("kind") for e in events][-1] == "completed"
            assert task.answer == events[-1].completed.answer
    finally:
        await tasks.stop(0)


async def test_a_seeded_sqlite_log_holds_finished_tasks_that_verify(tmp_path: Path) -> None:
    settings = Settings.from_env({"HIVEMESH_DATA_DIR": str(tmp_path), "HIVEMESH_METRICS_PORT": "off"})
    await seed_log(settings, 2500, tenant_id="default")  # more than one batch
    await check_seeded(settings, 2500, "default")


@pytest.mark.postgres
async def test_a_seeded_postgres_log_holds_finished_tasks_that_verify(tmp_path: Path) -> None:
    async with postgres_database() as url:
        env = {
            "HIVEMESH_DATA_DIR": str(tmp_path),
            "HIVEMESH_METRICS_PORT": "off",
            "HIVEMESH_DATABASE_URL": url,
        }
        settings = Settings.from_env(env)
        await seed_log(settings, 300, tenant_id="bench")
        await check_seeded(settings, 300, "bench")
