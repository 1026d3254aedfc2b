"""Sticky sessions for the planner and memory canaries: while two planner releases take tasks from
one queue and two memory releases answer, every turn of a session is planned by the planner release
its first turn ran on and reads and writes the memory release it started on.

Two releases (revisions "stable1" and "canary2") of planner, language, memory and tool run side by
side; a SideRouter (tests/planner/test_sticky_sessions.py) in front of each pair stands in for its
VirtualService. The gateway and both planners run with ``HIVEMESH_STICKY_SESSIONS=true`` and share
one task system, as replicas share PostgreSQL: the gateway queues each task for the planner side
its session is on, and each planner claims only its side's tasks.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from hivemesh.client import HivemeshClient
from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import CanarySide, TaskEvent, TaskState
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.releases import ASK_AGAIN_S, DEFAULT_MAX_AGE_S
from hivemesh.mesh.sides import CANARY, SIDES, STABLE
from tests.planner.test_sticky_sessions import CANARY_REVISION, STABLE_REVISION, SideRouter, answered
from tests.support import RunningMesh, make_settings, start_mesh

pytestmark = pytest.mark.slow

REVISIONS = {STABLE: STABLE_REVISION, CANARY: CANARY_REVISION}
BACKENDS = ("language", "memory", "tool")


class TwoReleases:
    """Both releases of every service behind the gateway, each pair behind a SideRouter."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._meshes: list[RunningMesh] = []
        self._servers: list[grpc.aio.Server] = []
        self._channels: list[grpc.aio.Channel] = []
        self.routers: dict[str, SideRouter] = {}
        self.addresses: dict[str, str] = {}
        self.planners: dict[str, RunningMesh] = {}
        self.gateway: RunningMesh | None = None

    async def _router(self, service: str) -> SideRouter:
        router = SideRouter({})
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((router,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._servers.append(server)
        self.routers[service] = router
        self.addresses[service] = f"127.0.0.1:{port}"
        return router

    def _attach(self, router: SideRouter, service: str, meshes: dict[str, RunningMesh]) -> None:
        backends = {}
        for side, mesh in meshes.items():
            channel = grpc.aio.insecure_channel(mesh.address(service))
            self._channels.append(channel)
            backends[side] = channel
        router.attach(backends)

    async def start(self) -> None:
        backends: dict[str, RunningMesh] = {}
        for side in SIDES:
            settings = make_settings(self._data_dir, HIVEMESH_REVISION=REVISIONS[side])
            backends[side] = await start_mesh(settings, list(BACKENDS))
            self._meshes.append(backends[side])
        for service in BACKENDS:
            self._attach(await self._router(service), service, backends)
        # The planners ask their router which side runs them, so it listens before they start.
        planner_router = await self._router("planner")
        routed = {f"HIVEMESH_{s.upper()}_ADDR": self.addresses[s] for s in (*BACKENDS, "planner")}
        for side in SIDES:
            settings = make_settings(
                self._data_dir, HIVEMESH_REVISION=REVISIONS[side], HIVEMESH_STICKY_SESSIONS="true", **routed
            )
            self.planners[side] = await start_mesh(settings, ["planner"])
            self._meshes.append(self.planners[side])
        self._attach(planner_router, "planner", self.planners)
        # Until then the planners could not learn their sides (they claim every task meanwhile).
        await asyncio.sleep(ASK_AGAIN_S + 0.5)
        settings = make_settings(self._data_dir, HIVEMESH_STICKY_SESSIONS="true", **routed)
        self.gateway = await start_mesh(settings, ["gateway"])
        self._meshes.append(self.gateway)
        # One gateway answers for both sides: the router only shows which side a caller named.
        self._attach(await self._router("gateway"), "gateway", dict.fromkeys(SIDES, self.gateway))

    async def stop(self) -> None:
        for mesh in reversed(self._meshes):
            await mesh.stop()
        for server in self._servers:
            await server.stop(None)
        for channel in self._channels:
            await channel.close(None)

    async def run(self, session: str, turn: int) -> dict[str, str]:
        """Runs one task of ``session``; the release label of each service's part of its run."""
        assert self.gateway is not None
        request = gw.ExecuteTaskRequest(
            request_id=f"{session}-{turn}",
            text=f"what is {turn} + 2?",
            scope=Scope(user_id="ana", session_id=session),
        )
        stub = GatewayServiceStub(self.gateway.client("gateway"))
        events: list[TaskEvent] = [r.event async for r in stub.ExecuteTask(request)]
        assert events[-1].completed.answer == str(turn + 2)
        working = [
            e.state_changed
            for e in events
            if e.WhichOneof("kind") == "state_changed"
            and e.state_changed.state == TaskState.TASK_STATE_WORKING
        ]
        return {p.service: p.label for p in working[0].release.parts}


@pytest.fixture
async def releases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TwoReleases]:
    # Read by the gateway's and the planners' own configs when they are built.
    monkeypatch.setenv("HIVEMESH_STICKY_SESSIONS", "true")
    running = TwoReleases(tmp_path / "data")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_a_session_stays_on_its_planner_and_memory_release(releases: TwoReleases) -> None:
    sessions = [f"s{i}" for i in range(5)]
    seen: dict[str, list[dict[str, str]]] = {s: [] for s in sessions}
    # Turns of the sessions interleave, as real conversations do, in a different order each round,
    # so that no pattern of which planner is free first could keep a session on one by chance.
    orders = [sessions, sessions[::-1], sessions[2:] + sessions[:2]]
    for turn, order in enumerate(orders):
        for session in order:
            seen[session].append(await releases.run(session, turn))
    for session, runs in seen.items():
        assert all(run == runs[0] for run in runs), f"session {session} switched releases: {runs}"
        assert set(runs[0]) == {"planner", *BACKENDS}
    # A new session starts on the planner side one weighted GetRelease from the gateway reaches,
    # so both planners took sessions; after that each took only its sessions' tasks.
    started = Counter(runs[0]["planner"] for runs in seen.values())
    assert started[STABLE_REVISION] > 0
    assert started[CANARY_REVISION] > 0
    # Every memory call of a run named its side and was answered there.
    memory = answered(releases.routers["memory"], lambda name: name in {"GetContext", "AppendTurns"})
    assert set(memory) == {(STABLE, STABLE), (CANARY, CANARY)}
    memory_runs = Counter(run["memory"] for runs in seen.values() for run in runs)
    context = answered(releases.routers["memory"], lambda name: name == "GetContext")
    assert context[(CANARY, CANARY)] == memory_runs[CANARY_REVISION]
    assert context[(STABLE, STABLE)] == memory_runs[STABLE_REVISION]


async def test_a_task_that_names_its_side_is_planned_there(releases: TwoReleases) -> None:
    # As hivemesh eval --side sends them: TaskOptions.side, and the header that takes the call to
    # that side's gateway.
    named = {CANARY: CanarySide.CANARY_SIDE_CANARY, STABLE: CanarySide.CANARY_SIDE_STABLE}
    async with HivemeshClient(releases.addresses["gateway"]) as client:
        for side in (CANARY, STABLE, CANARY):
            events = [
                e
                async for e in client.execute(
                    "what is 1 + 1?", user_id="ana", session_id=f"eval-{side}", side=named[side]
                )
            ]
            working = next(
                e.state_changed
                for e in events
                if e.WhichOneof("kind") == "state_changed"
                and e.state_changed.state == TaskState.TASK_STATE_WORKING
            )
            labels = {p.service: p.label for p in working.release.parts}
            assert labels == dict.fromkeys(("planner", *BACKENDS), REVISIONS[side])
    executed = answered(releases.routers["gateway"], lambda name: name == "ExecuteTask")
    assert executed == Counter({(CANARY, CANARY): 2, (STABLE, STABLE): 1})


async def test_when_the_planner_canary_is_aborted_its_sessions_go_on_on_the_stable_side(
    releases: TwoReleases,
) -> None:
    sessions = [f"s{i}" for i in range(4)]
    before = [await releases.run(session, 0) for session in sessions]
    assert {run["planner"] for run in before} == {STABLE_REVISION, CANARY_REVISION}
    # The canary goes: both subsets select the stable pods, and its pods stop.
    releases.routers["planner"].abort()
    await releases.planners[CANARY].stop()
    await asyncio.sleep(DEFAULT_MAX_AGE_S + 0.5)  # the gateway and the planner ask each side again
    after = [await releases.run(session, 1) for session in sessions]
    assert [run["planner"] for run in after] == [STABLE_REVISION] * len(sessions)
