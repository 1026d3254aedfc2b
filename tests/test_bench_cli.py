"""``hivemesh bench`` and ``HivemeshClient.execute`` against a real mesh in this process (port 0)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import grpc
import pytest

from hivemesh.cli import EXIT_UNAVAILABLE
from hivemesh.client import HivemeshClient
from tests.support import RunningMesh


async def bench(*flags: str) -> subprocess.CompletedProcess[str]:
    """``hivemesh bench`` in its own process (its event loop and logging are its own)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hivemesh.cli", "bench", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HIVEMESH_METRICS_PORT": "off"},
    )


@pytest.fixture(autouse=True)
def _no_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``hivemesh up`` without credentials: a benchmark measures the mesh, not the limiter (a
    fast mesh serves two closed-loop clients faster than the default 50 calls/s of one tenant)."""
    monkeypatch.setenv("HIVEMESH_RATE_LIMIT", "0")


async def test_execute_submits_and_follows_in_one_stream(mesh: RunningMesh) -> None:
    async with HivemeshClient(mesh.address("gateway")) as client:
        events = [e async for e in client.execute("what is 12 * (3 + 4)?", user_id="ana", session_id="s1")]
    kinds = [e.WhichOneof("kind") for e in events]
    assert kinds[0] == "submitted"
    assert kinds[-1] == "completed"
    assert events[-1].completed.answer == "84"
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert len({e.task_id for e in events}) == 1


async def test_execute_again_with_the_same_request_id_replays_the_same_task(mesh: RunningMesh) -> None:
    request_id = uuid.uuid4().hex
    async with HivemeshClient(mesh.address("gateway")) as client:
        first = [
            e
            async for e in client.execute(
                "convert 5 miles to km", user_id="ana", session_id="s2", request_id=request_id
            )
        ]
        again = [
            e
            async for e in client.execute(
                "convert 5 miles to km", user_id="ana", session_id="s2", request_id=request_id
            )
        ]
    assert [e.SerializeToString(deterministic=True) for e in again] == [
        e.SerializeToString(deterministic=True) for e in first
    ]


async def test_execute_is_bounded_by_its_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    async with HivemeshClient(f"127.0.0.1:{port}") as client:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in client.execute("hi", user_id="u", session_id="s", timeout_s=0.3):
                pass
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_bench_open_loop_starts_tasks_at_the_rate_asked(mesh: RunningMesh) -> None:
    result = await bench("--address", mesh.address("gateway"), "--rate", "10", "--duration", "1.5", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == "open"
    assert report["rate"] == 10
    assert report["started"] == 15  # due at 0, 0.1, ..., 1.4 s
    assert report["completed"] == 15
    assert report["errors"] == {}
    assert 0 < report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"]
    progress = [line for line in result.stderr.splitlines() if line.startswith("bench ")]
    assert progress, result.stderr
    assert "completed" in progress[0]
    assert "in flight" in progress[0]


async def test_bench_closed_loop_prints_a_summary(mesh: RunningMesh) -> None:
    result = await bench(
        "--address", mesh.address("gateway"), "--clients", "2", "--duration", "1", "--prompt", "spell cat"
    )
    assert result.returncode == 0, result.stderr
    assert "(closed 2)" in result.stdout
    assert "errors 0" in result.stdout
    completed = int(result.stdout.split()[0])
    assert completed >= 2


async def test_bench_against_a_gateway_that_is_down_fails_at_once_naming_the_address() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    started = time.monotonic()
    result = await bench("--address", f"127.0.0.1:{port}", "--rate", "4", "--duration", "5", "--json")
    elapsed = time.monotonic() - started
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    assert f"cannot reach the gateway at 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    # The connect timeout (1.5 s) and the start of a Python process, not the 5 s of load.
    assert elapsed < 4.5


async def test_bench_counts_errors_and_fails_when_nothing_completes() -> None:
    # A gRPC server that answers every call UNIMPLEMENTED: connected, yet no task completes.
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        result = await bench("--address", f"127.0.0.1:{port}", "--rate", "4", "--duration", "0.5", "--json")
    finally:
        await server.stop(None)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["completed"] == 0
    assert report["errors"] == {"UNIMPLEMENTED": 2}


@pytest.mark.parametrize(
    "flags",
    [["--rate", "5", "--clients", "2"], ["--rate", "0"], ["--clients", "0"], ["--duration", "-1"]],
)
async def test_bench_refuses_contradictory_or_empty_loads(flags: list[str]) -> None:
    result = await bench(*flags)
    assert result.returncode == 2
    assert "usage:" in result.stderr
