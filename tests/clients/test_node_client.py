"""The Node.js client (clients/node/hivemesh-run.js: @grpc/grpc-js, with the contracts loaded from
protos/ by @grpc/proto-loader) against a real mesh: it submits a task, watches its events and prints
the answer. Its dependencies come from `npm ci` in clients/node (scripts/test runs it)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hivemesh.mesh.config import Settings
from tests.support import RunningMesh, keys_for, start_mesh

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "node"
NODE = shutil.which("node")
EVENT_LINE = re.compile(r"^\s+\[(?P<sequence>\d+)\] attempt (?P<attempt>\d+) (?P<kind>\w+) ?(?P<detail>.*)$")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="Node.js is not installed (no `node` on PATH)"),
    pytest.mark.slow,
]


@dataclass(frozen=True)
class Event:
    sequence: int
    attempt: int
    kind: str
    detail: str


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[Event]:
        """The events the client printed, one per stderr line."""
        found = (EVENT_LINE.match(line) for line in self.stderr.splitlines())
        return [Event(int(m["sequence"]), int(m["attempt"]), m["kind"], m["detail"]) for m in found if m]


@pytest.fixture(scope="module")
def proto_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """protos/ and a directory holding buf/validate/validate.proto, written from the installed
    protovalidate package as tools/gen.py does: no buf, no network."""
    if not (CLIENT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail(
            "the Node client's packages are missing: run `npm ci` in clients/node (scripts/test does it)"
        )
    deps = tmp_path_factory.mktemp("protodeps")
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "protodeps.py"), str(deps)], check=True, capture_output=True
    )
    return [ROOT / "protos", deps]


async def run_client(address: str, proto_paths: list[Path], text: str, *options: str) -> Run:
    assert NODE is not None
    env = {name: value for name, value in os.environ.items() if not name.startswith("HIVEMESH_")}
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(CLIENT / "hivemesh-run.js"),
        f"--address={address}",
        *(f"--proto-path={path}" for path in proto_paths),
        "--user=ana",
        "--session=node",
        *options,
        text,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


@pytest.fixture
async def keyed_mesh(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[RunningMesh, str]]:
    """A mesh whose gateway requires credentials, and an API key of tenant acme."""
    (acme,) = await keys_for(settings, "acme")
    monkeypatch.setenv("HIVEMESH_AUTH", "required")
    running = await start_mesh(settings)
    try:
        yield running, acme
    finally:
        await running.stop()


async def test_the_node_client_runs_a_task_and_follows_its_events_to_the_answer(
    mesh: RunningMesh, proto_paths: list[Path]
) -> None:
    address = mesh.address("gateway")
    run = await run_client(address, proto_paths, "what is 12 * (3 + 4)?")

    assert run.code == 0, run.stderr
    assert run.stdout == "84\n"
    events = run.events
    # Every event of the log, in order, from the submission to the answer.
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[0].kind == "submitted"
    assert events[0].attempt == 0
    kinds = [e.kind for e in events]
    assert kinds.index("tool_result") < kinds.index("answer_delta") < kinds.index("completed")
    assert events[-1] == Event(events[-1].sequence, 1, "completed", "84")
    assert [e.detail for e in events if e.kind == "answer_delta"] == ['"84"']

    # A task that needs the user's answer ends the watch with the question (exit status 3).
    asked = await run_client(address, proto_paths, "remind me")
    assert asked.code == 3, asked.stderr
    assert asked.events[-1].kind == "input_requested"
    assert asked.stdout == f"{asked.events[-1].detail}\n"


async def test_the_node_client_authenticates_with_an_api_key(
    keyed_mesh: tuple[RunningMesh, str], proto_paths: list[Path]
) -> None:
    mesh, acme = keyed_mesh
    address = mesh.address("gateway")

    refused = await run_client(address, proto_paths, "what is 2 + 2?")
    assert refused.code == 1
    assert "UNAUTHENTICATED" in refused.stderr
    assert refused.events == []

    run = await run_client(address, proto_paths, "what is 12 * (3 + 4)?", f"--api-key={acme}")
    assert run.code == 0, run.stderr
    assert run.stdout == "84\n"
    assert "(tenant acme)" in run.stderr
