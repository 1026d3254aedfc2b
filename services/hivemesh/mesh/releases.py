"""What each side of a canary runs, and the release a run starts on.

``SideMap`` asks each side of a service's canary for its part (``ReleaseService.GetRelease`` naming
the side in ``x-hivemesh-side``, which the sticky routes send to that side), at most once per
``max_age_s``, and answers which side runs a release and which side a new session starts on.

``GrpcReleases`` is the planner's: the release a run starts on (its own part and the parts the
language, memory and tool services report), shared by every worker of the process, so recording it
costs a task nothing but a copy. With sticky sessions (``HIVEMESH_STICKY_SESSIONS``, on inside the
mesh) the run also chooses, per service, the side of a canary its calls go to
(``hivemesh.mesh.sides``): a session whose earlier task ran on a release that still runs stays on
that release's side; a new session (or one whose release is gone) gets the side one ``GetRelease``
routed by the weights reaches, so sessions start on the canary in the proportion the canary step
sets. Without a canary both sides report the same release and nothing is asked per session.

The planner's own canary is chosen before a run, by the gateway (``session_side``): the task is
queued for one side and only that side's workers claim it (``GrpcReleases.own_side``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import grpc

from hivemesh.common.v1.release_pb2 import Release, ReleasePart
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.sides import CANARY, SIDE_HEADER, SIDES, STABLE, STICKY_SERVICES
from hivemesh.release.v1 import release_service_pb2 as pb
from hivemesh.release.v1.release_service_pb2_grpc import ReleaseServiceStub

if TYPE_CHECKING:  # the async stubs exist in the type stubs only
    from hivemesh.release.v1.release_service_pb2_grpc import ReleaseServiceAsyncStub

_log = logging.getLogger(__name__)

# The services besides the planner whose parts decide an answer.
DECIDING_SERVICES = tuple(s for s in STICKY_SERVICES if s != "planner")
# Who asks which services which release each side runs: the gateway the planner's sides (to queue
# a session's tasks for its side), the planner the sides of every service a run calls and its own
# (to claim its side's tasks). istio/authorization.yaml admits exactly these callers to GetRelease.
ASKS: Final[Mapping[str, tuple[str, ...]]] = {
    "gateway": ("planner",),
    "planner": (*DECIDING_SERVICES, "planner"),
}
# Long enough that a busy planner asks a few times a minute; short enough that a canary step's new
# weights show in the recorded releases within seconds.
DEFAULT_MAX_AGE_S = 5.0
# A release is a description: asking for it never holds a run up for long.
ASK_TIMEOUT_S = 1.0
# When a side did not answer (a process starting, a pod going), the answers are asked again this
# soon: until then a planner that does not know its side claims every task.
ASK_AGAIN_S = 1.0


@dataclass(frozen=True)
class RunRelease:
    """What a run records (``release``) and the side of a canary each service's calls name
    (``sides``, hivemesh.mesh.sides; empty without sticky sessions: every call is weighted)."""

    release: Release
    sides: Mapping[str, str] = field(default_factory=dict)


# Finds the release a task's session is on (None: a new session); asked only when it matters.
Pinned = Callable[[], Awaitable[Release | None]]

# service -> side -> the part that side reported
_Sides = dict[str, dict[str, ReleasePart]]


def canary_runs(reported: Mapping[str, ReleasePart]) -> bool:
    """Whether the two sides of a service run different releases."""
    stable, canary = reported.get(STABLE), reported.get(CANARY)
    return stable is not None and canary is not None and stable.label != canary.label


def label_of(release: Release | None, service: str) -> str | None:
    """The label of ``service``'s part of ``release``, if it has one."""
    if release is None:
        return None
    return next((p.label for p in release.parts if p.service == service), None)


class SideMap:
    """What the stable and the canary side of each of ``services`` run; see the module docstring.
    Without ``sticky`` only one weighted question is asked per service (stored as the stable
    side's answer). ``addresses`` names a service's address when its calls must leave the process
    even if it runs in it (the planner asking which side runs itself)."""

    def __init__(
        self,
        channels: ChannelFactory,
        services: Sequence[str],
        *,
        sticky: bool,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        addresses: Mapping[str, str] | None = None,
    ) -> None:
        self._channels = channels
        self._services = tuple(services)
        self._addresses = dict(addresses or {})
        # Opened at the first question, once this process's own services are serving.
        self._stubs: dict[str, ReleaseServiceAsyncStub] = {}
        self._sticky = sticky
        self._max_age_s = max_age_s
        self._held: _Sides | None = None
        self._fresh_until = 0.0
        self._lock = asyncio.Lock()

    @property
    def sticky(self) -> bool:
        return self._sticky

    async def known(self) -> _Sides:
        async with self._lock:
            if self._held is None or time.monotonic() >= self._fresh_until:
                self._held = await self._ask()
                answered = sum(len(sides) for sides in self._held.values())
                complete = answered == len(self._services) * (len(SIDES) if self._sticky else 1)
                age = self._max_age_s if complete else min(self._max_age_s, ASK_AGAIN_S)
                self._fresh_until = time.monotonic() + age
            return self._held

    async def choose(self, service: str, pinned: str | None) -> str | None:
        """The side of ``service`` a session goes to: the side running ``pinned`` (the label the
        session is on) while it runs, else the side a weighted call reaches; None when neither
        side answered."""
        reported = (await self.known()).get(service, {})
        stable, canary = reported.get(STABLE), reported.get(CANARY)
        if stable is None or canary is None:
            # A side that did not answer: stay on the one that did.
            return STABLE if stable is not None else (CANARY if canary is not None else None)
        if pinned is not None:
            for side in SIDES:
                if reported[side].label == pinned:
                    return side
        if canary.label == stable.label:
            return STABLE  # no canary runs
        # A new session during a canary: the side a weighted call reaches.
        answered = await self._ask_one(service, side=None)
        return CANARY if answered is not None and answered.label == canary.label else STABLE

    async def session_side(self, service: str, pinned: Pinned, *, named: str | None = None) -> str:
        """The side of ``service``'s canary a session's next task is for: ``named`` when the task
        names one, else the side its session is on (``pinned``), else the side a weighted call
        reaches; '' while no canary of ``service`` runs (or without sticky sessions): any side."""
        if not self._sticky or not canary_runs((await self.known()).get(service, {})):
            return ""
        if named is not None:
            return named
        return await self.choose(service, label_of(await pinned(), service)) or ""

    async def side_running(self, service: str, label: str) -> str | None:
        """The side of ``service``'s canary that runs ``label`` while a canary runs; None when
        none runs (every side is the same) or when neither side runs ``label``."""
        reported = (await self.known()).get(service, {})
        if not self._sticky or not canary_runs(reported):
            return None
        return next((side for side in SIDES if reported[side].label == label), None)

    async def _ask(self) -> _Sides:
        asked = [(s, side) for s in self._services for side in (SIDES if self._sticky else (STABLE,))]
        # Without sticky sessions the one question is weighted (no header): whoever answers.
        answers = await asyncio.gather(
            *(self._ask_one(s, side=side if self._sticky else None) for s, side in asked)
        )
        found: _Sides = {}
        for (service, side), part in zip(asked, answers, strict=True):
            if part is not None:
                found.setdefault(service, {})[side] = part
        return found

    def _stub(self, service: str) -> ReleaseServiceAsyncStub:
        stub = self._stubs.get(service)
        if stub is None:
            address = self._addresses.get(service)
            channel = (
                self._channels.channel(service)
                if address is None
                else self._channels.network_channel(service, address)
            )
            stub = self._stubs[service] = ReleaseServiceStub(channel)
        return stub

    async def _ask_one(self, service: str, *, side: str | None) -> ReleasePart | None:
        metadata = () if side is None else ((SIDE_HEADER, side),)
        try:
            response: pb.GetReleaseResponse = await self._stub(service).GetRelease(
                pb.GetReleaseRequest(), timeout=ASK_TIMEOUT_S, metadata=metadata
            )
        except grpc.aio.AioRpcError as exc:
            # Nothing depends on it: a run records the parts that answered.
            _log.warning("the %s service did not report its release: %s", service, exc.code().name)
            return None
        return response.release


class GrpcReleases:
    """The planner's ``Releases``: its own part, and the sides of the services it calls."""

    def __init__(self, own: ReleasePart, sides: SideMap) -> None:
        self._own = own
        self._sides = sides

    async def current(self, pinned: Pinned | None = None, *, side: str | None = None) -> RunRelease:
        """The release a run starts on: on ``side`` when given (a task that names its side), else on
        the side of the release ``pinned`` finds (its session's last run's) while that runs.
        ``pinned`` is awaited only while a canary runs: outside one every side is the same."""
        known = await self._sides.known()
        if not self._sides.sticky:
            parts = [known[s][STABLE] for s in DECIDING_SERVICES if STABLE in known.get(s, {})]
            return RunRelease(Release(parts=[self._own, *parts]))
        labels: dict[str, str] = {}
        if (
            pinned is not None
            and side is None
            and any(canary_runs(known.get(s, {})) for s in DECIDING_SERVICES)
        ):
            found = await pinned()
            labels = {p.service: p.label for p in found.parts} if found is not None else {}
        if side is not None:
            # The side's own part: outside a canary that side's subset selects the stable pods.
            labels = {s: known[s][side].label for s in DECIDING_SERVICES if side in known.get(s, {})}
        chosen = await asyncio.gather(*(self._sides.choose(s, labels.get(s)) for s in DECIDING_SERVICES))
        sides = {s: side for s, side in zip(DECIDING_SERVICES, chosen, strict=True) if side is not None}
        release = Release(parts=[self._own])
        release.parts.extend(known[s][side] for s, side in sides.items())
        return RunRelease(release, sides)

    async def own_side(self) -> str | None:
        """The side of the planner's canary this process is on while one runs (its workers claim
        that side's tasks and those for any side); None: any task (no canary runs, or this release
        runs on neither side, say a third one during a quick succession of rollouts)."""
        return await self._sides.side_running(self._own.service, self._own.label)
