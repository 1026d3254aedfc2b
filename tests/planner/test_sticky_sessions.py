"""Sticky sessions during a canary: a session's tasks are answered by the language and tool release
its first task ran on, while both releases run.

Two real releases of language and tool (revisions "stable1" and "canary2") run side by side; a
small gRPC proxy in front of each pair stands in for Istio's VirtualService (istio/services/): a call
with ``x-hivemesh-side: stable`` or ``canary`` goes to that side, a call without it alternates
between the two per method (a 50% canary weight, deterministic). Gateway, planner and memory are real and run
with ``HIVEMESH_STICKY_SESSIONS=true``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import TaskEvent, TaskState
from hivemesh.evaluation import cases
from hivemesh.evaluation.cli import EXIT_REGRESSED, main
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.contracts import CONTRACTS, is_streaming
from hivemesh.mesh.releases import DEFAULT_MAX_AGE_S as RELEASE_MAX_AGE_S
from hivemesh.mesh.sides import CANARY, SIDE_HEADER, STABLE
from tests.language.nlu_data import write_router_without
from tests.support import RunningMesh, make_settings, start_mesh

pytestmark = pytest.mark.slow

STABLE_REVISION, CANARY_REVISION = "stable1", "canary2"
_STREAMING = {
    f"/{contract.full_name}/{method.name}"
    for contract in CONTRACTS.values()
    for method in contract.descriptor.methods
    if is_streaming(method)
}


class SideRouter(grpc.GenericRpcHandler):  # type: ignore[type-arg]  # generic only in the stubs
    """Routes every call by its side header, as the VirtualServices do; records what it routed."""

    def __init__(self, backends: Mapping[str, grpc.aio.Channel]) -> None:
        self._backends = dict(backends)
        self._releases = dict(backends)  # each release's channel, by the side it started on
        # Per method, so that the calls of one kind alternate whatever else is called between them.
        self._weighted: dict[str, Iterator[str]] = {}
        # (method name, the side the caller named or "", the side that answered)
        self.calls: list[tuple[str, str, str]] = []

    def attach(self, backends: Mapping[str, grpc.aio.Channel]) -> None:
        """Route to ``backends`` from now on (for a pair that must know the router's address before
        it starts, as planners do: they ask it which side runs them)."""
        self._backends = dict(backends)
        self._releases = dict(backends)

    def promote(self) -> None:
        """The canary's release becomes stable and the old one goes, as at the end of a rollout:
        both subsets select the canary's pods."""
        self._backends = {STABLE: self._releases[CANARY], CANARY: self._releases[CANARY]}

    def abort(self) -> None:
        """The canary goes: both subsets select the stable pods."""
        self._backends = {STABLE: self._releases[STABLE], CANARY: self._releases[STABLE]}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        metadata = [(k, v) for k, v in handler_call_details.invocation_metadata if not k.startswith(":")]
        found = dict(metadata).get(SIDE_HEADER, "")
        named = found if isinstance(found, str) else found.decode()
        weighted = self._weighted.setdefault(method, itertools.cycle((STABLE, CANARY)))
        side = named if named in self._backends else next(weighted)
        self.calls.append((method.rsplit("/", 1)[1], named, side))
        channel = self._backends[side]

        if method in _STREAMING:

            async def stream(
                request: bytes, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[bytes]:
                call = channel.unary_stream(method, None, None)(
                    request, metadata=metadata, timeout=context.time_remaining()
                )
                try:
                    async for chunk in call:
                        yield chunk
                except grpc.aio.AioRpcError as exc:
                    await context.abort(exc.code(), exc.details() or "")

            return grpc.unary_stream_rpc_method_handler(stream)

        async def unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            try:
                answer: bytes = await channel.unary_unary(method, None, None)(
                    request, metadata=metadata, timeout=context.time_remaining()
                )
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
            return answer

        return grpc.unary_unary_rpc_method_handler(unary)


class Canary:
    """Both releases of language and tool, each pair behind its SideRouter."""

    def __init__(self, data_dir: Path, canary_env: Mapping[str, str] | None = None) -> None:
        self._data_dir = data_dir
        self._canary_env = dict(canary_env or {})
        self._meshes: list[RunningMesh] = []
        self._servers: list[grpc.aio.Server] = []
        self._channels: list[grpc.aio.Channel] = []
        self.routers: dict[str, SideRouter] = {}
        self.addresses: dict[str, str] = {}

    async def start(self) -> None:
        sides = {}
        for side, revision in ((STABLE, STABLE_REVISION), (CANARY, CANARY_REVISION)):
            env = self._canary_env if side == CANARY else {}
            settings = make_settings(self._data_dir, HIVEMESH_REVISION=revision, **env)
            with pytest.MonkeyPatch.context() as variables:  # each service reads its own as it is built
                for name, value in env.items():
                    variables.setenv(name, value)
                mesh = await start_mesh(settings, ["language", "tool"])
            self._meshes.append(mesh)
            sides[side] = mesh
        for service in ("language", "tool"):
            backends = {}
            for side, mesh in sides.items():
                channel = grpc.aio.insecure_channel(mesh.address(service))
                self._channels.append(channel)
                backends[side] = channel
            router = SideRouter(backends)
            server = grpc.aio.server()
            server.add_generic_rpc_handlers((router,))
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            self._servers.append(server)
            self.routers[service] = router
            self.addresses[service] = f"127.0.0.1:{port}"

    async def stop(self) -> None:
        for server in self._servers:
            await server.stop(None)
        for channel in self._channels:
            await channel.close(None)
        for mesh in self._meshes:
            await mesh.stop()


@pytest.fixture
async def canary(tmp_path: Path) -> AsyncIterator[Canary]:
    running = Canary(tmp_path / "data")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def front(tmp_path: Path, canary: Canary, sticky: bool) -> RunningMesh:
    settings = make_settings(
        tmp_path / "data",
        HIVEMESH_LANGUAGE_ADDR=canary.addresses["language"],
        HIVEMESH_TOOL_ADDR=canary.addresses["tool"],
    )
    with pytest.MonkeyPatch.context() as env:  # the planner reads its own settings as it is built
        env.setenv("HIVEMESH_STICKY_SESSIONS", "true" if sticky else "false")
        return await start_mesh(settings, ["gateway", "planner", "memory"])


async def labels_of_run(mesh: RunningMesh, session: str, turn: int) -> dict[str, str]:
    """Runs one task of ``session``; the release labels of its language and tool parts."""
    request = gw.ExecuteTaskRequest(
        request_id=f"{session}-{turn}",
        text=f"what is {turn} + 2?",
        scope=Scope(user_id="ana", session_id=session),
    )
    events: list[TaskEvent] = [
        r.event async for r in GatewayServiceStub(mesh.client("gateway")).ExecuteTask(request)
    ]
    assert events[-1].completed.answer == str(turn + 2)
    working = [
        e.state_changed
        for e in events
        if e.WhichOneof("kind") == "state_changed" and e.state_changed.state == TaskState.TASK_STATE_WORKING
    ]
    return {p.service: p.label for p in working[0].release.parts if p.service in ("language", "tool")}


def answered(router: SideRouter, methods: Callable[[str], bool]) -> Counter[tuple[str, str]]:
    return Counter((named, side) for name, named, side in router.calls if methods(name))


async def test_a_session_stays_on_the_release_it_started_on(tmp_path: Path, canary: Canary) -> None:
    mesh = await front(tmp_path, canary, sticky=True)
    try:
        sessions = [f"s{i}" for i in range(6)]
        seen: dict[str, list[dict[str, str]]] = {s: [] for s in sessions}
        for turn in range(3):  # turns of the sessions interleave, as real conversations do
            for session in sessions:
                seen[session].append(await labels_of_run(mesh, session, turn))
    finally:
        await mesh.stop()
    for session, runs in seen.items():
        assert all(run == runs[0] for run in runs), f"session {session} switched releases: {runs}"
    # A new session starts on the side one call routed by the weights reaches (a GetRelease that
    # names no side), so sessions start on both.
    for service in ("language", "tool"):
        started = Counter(runs[0][service] for runs in seen.values())
        weighted = answered(canary.routers[service], lambda name: name == "GetRelease")
        assert started[CANARY_REVISION] == weighted[("", CANARY)] > 0, service
        assert started[STABLE_REVISION] == weighted[("", STABLE)] > 0, service
    # Every call that decides an answer named its side and was answered there; the runs record
    # the side that answered them.
    understood = answered(canary.routers["language"], lambda name: name == "Understand")
    assert set(understood) <= {(STABLE, STABLE), (CANARY, CANARY)}
    language_runs = Counter(run["language"] for runs in seen.values() for run in runs)
    assert understood[(CANARY, CANARY)] == language_runs[CANARY_REVISION]
    assert understood[(STABLE, STABLE)] == language_runs[STABLE_REVISION]
    invoked = answered(canary.routers["tool"], lambda name: name.startswith("InvokeTool"))
    tool_runs = Counter(run["tool"] for runs in seen.values() for run in runs)
    assert set(invoked) <= {(STABLE, STABLE), (CANARY, CANARY)}
    assert invoked[(CANARY, CANARY)] == tool_runs[CANARY_REVISION]
    assert invoked[(STABLE, STABLE)] == tool_runs[STABLE_REVISION]


async def test_without_sticky_sessions_every_call_is_weighted(tmp_path: Path, canary: Canary) -> None:
    mesh = await front(tmp_path, canary, sticky=False)
    try:
        for turn in range(4):
            await labels_of_run(mesh, "s1", turn)
    finally:
        await mesh.stop()
    understood = answered(canary.routers["language"], lambda name: name == "Understand")
    # No side named: the calls of one conversation reach both releases.
    assert set(understood) == {("", STABLE), ("", CANARY)}


async def test_the_eval_gate_of_a_language_canary_runs_on_its_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The candidate language release has a worse router; its Rollout's eval step runs the suite
    # through the one gateway, once on each side (k8s/base/rollouts/rollouts.yaml).
    router = await asyncio.to_thread(write_router_without, {"spell"}, tmp_path / "router")
    canary = Canary(tmp_path / "data", {"HIVEMESH_NLU_MODEL": str(router)})
    await canary.start()
    suite = tmp_path / "suite.json"
    chosen = [c for c in cases.load("default").cases if c.category in {"spelling", "greeting"}]
    suite.write_text(cases.dumps(chosen), encoding="utf-8")
    try:
        mesh = await front(tmp_path, canary, sticky=True)
        try:
            gateway = mesh.address("gateway")
            code = await asyncio.to_thread(
                main,
                ["--cases", str(suite), "--target", gateway, "--side", "canary",
                 "--baseline", gateway, "--baseline-side", "stable", "--p99-factor", "0"],
            )  # fmt: skip
        finally:
            await mesh.stop()
    finally:
        await canary.stop()
    out = capsys.readouterr().out
    assert code == EXIT_REGRESSED
    assert "REGRESSED (exit 5):\n  spelling: accuracy 100.0% -> " in out
    assert "greeting: accuracy" not in out
    # Every case's calls named their side: the canary's questions all went to the canary.
    understood = answered(canary.routers["language"], lambda name: name == "Understand")
    assert set(understood) == {(STABLE, STABLE), (CANARY, CANARY)}
    assert understood[(CANARY, CANARY)] == understood[(STABLE, STABLE)]


@pytest.mark.parametrize("end", ["promote", "abort"])
async def test_when_the_canary_ends_every_session_goes_to_the_release_that_remains(
    tmp_path: Path, canary: Canary, end: str
) -> None:
    mesh = await front(tmp_path, canary, sticky=True)
    try:
        sessions = [f"s{i}" for i in range(4)]
        before = [await labels_of_run(mesh, session, 0) for session in sessions]
        assert {run["language"] for run in before} == {STABLE_REVISION, CANARY_REVISION}
        for router in canary.routers.values():
            getattr(router, end)()
        await asyncio.sleep(RELEASE_MAX_AGE_S + 0.5)  # the planner asks each side again
        after = [await labels_of_run(mesh, session, 1) for session in sessions]
    finally:
        await mesh.stop()
    remaining = CANARY_REVISION if end == "promote" else STABLE_REVISION
    assert after == [{"language": remaining, "tool": remaining}] * len(sessions)
