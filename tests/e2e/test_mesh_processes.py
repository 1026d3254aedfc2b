"""The five services in five processes, as in staging: a request in words comes back answered, its
trace spans all five services, and grpcurl sees each service through reflection and health."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hivemesh.mesh.config import SERVICES
from hivemesh.mesh.contracts import CONTRACTS

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Staging:
    env: dict[str, str]
    ports: dict[str, int]
    trace_file: Path
    processes: dict[str, subprocess.Popen[bytes]]


def _healthy(port: int) -> bool:
    grpcurl = shutil.which("grpcurl", path=str(BIN))
    assert grpcurl is not None
    result = subprocess.run(
        [
            grpcurl,
            "-plaintext",
            "-max-time",
            "2",
            "-d",
            '{"service": "readiness"}',
            f"127.0.0.1:{port}",
            "grpc.health.v1.Health/Check",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return '"SERVING"' in result.stdout


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staging]:
    base = tmp_path_factory.mktemp("staging")
    ports = {name: free_port() for name in SERVICES}
    trace_file = base / "spans.jsonl"
    env = {
        **os.environ,
        "HIVEMESH_DATA_DIR": str(base / "data"),
        "HIVEMESH_METRICS_PORT": "off",
        "HIVEMESH_AUTH": "none",
        "HIVEMESH_TRACE_FILE": str(trace_file),
        **{f"HIVEMESH_{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }
    logs = {name: (base / f"{name}.log").open("wb") for name in SERVICES}
    processes = {
        name: subprocess.Popen([str(BIN / "hivemesh"), "serve", name], env=env, stderr=logs[name])
        for name in SERVICES
    }
    try:
        deadline = time.monotonic() + 90
        pending = set(SERVICES)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                if processes[name].poll() is not None:
                    pytest.fail(f"{name} exited: {(base / f'{name}.log').read_text()[-2000:]}")
                if _healthy(ports[name]):
                    pending.discard(name)
            time.sleep(0.2)
        assert not pending, f"not ready: {pending}"
        yield Staging(env, ports, trace_file, processes)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs.values():
            log.close()


def test_a_request_in_words_is_answered_and_traced_through_all_five(staging: Staging) -> None:
    result = subprocess.run(
        [str(BIN / "hivemesh"), "run", "what is 12 * (3 + 4)?"],
        env=staging.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "84"
    task_id = result.stderr.split("task ", 1)[1].split()[0]

    def services_in_trace() -> set[str]:
        spans = [json.loads(line) for line in staging.trace_file.read_text().splitlines() if line.strip()]
        run = [s for s in spans if s["attributes"].get("hivemesh.task.id") == task_id]
        if not run:
            return set()
        trace_id = run[0]["trace_id"]
        return {s["service"] for s in spans if s["trace_id"] == trace_id}

    deadline = time.monotonic() + 10  # spans are exported in batches
    seen: set[str] = set()
    while time.monotonic() < deadline and len(seen) < len(SERVICES):
        seen = services_in_trace() if staging.trace_file.exists() else set()
        time.sleep(0.2)
    assert seen == {f"hivemesh-{name}" for name in SERVICES}


@pytest.mark.parametrize("service", SERVICES)
def test_grpcurl_lists_and_health_checks_each_service(staging: Staging, service: str) -> None:
    grpcurl = shutil.which("grpcurl", path=str(BIN))
    assert grpcurl is not None
    address = f"127.0.0.1:{staging.ports[service]}"
    listed = subprocess.run(
        [grpcurl, "-plaintext", address, "list"], capture_output=True, text=True, check=True
    )
    names = set(listed.stdout.split())
    assert CONTRACTS[service].full_name in names
    assert "grpc.health.v1.Health" in names
    assert names & {"grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"}
    health = subprocess.run(
        [grpcurl, "-plaintext", address, "grpc.health.v1.Health/Check"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(health.stdout)["status"] == "SERVING"
    described = subprocess.run(
        [grpcurl, "-plaintext", address, "describe", CONTRACTS[service].full_name],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "rpc " in described.stdout
