"""The release a run starts on: the planner's own part, and the parts the language and tool services
report (``ReleaseService.GetRelease``), asked at most once per ``max_age_s`` and shared by every
worker of the process, so recording it costs a task nothing but a copy.

With sticky sessions (``HIVEMESH_STICKY_SESSIONS``, on inside the mesh) the run also chooses, per
service, the side of a canary its calls go to (``hivemesh.mesh.sides``): the planner asks each side
for its part (a ``GetRelease`` that names the side is routed to it), so it knows which release runs
where. A session whose earlier task ran on a release that still runs stays on that release's side;
a new session (or one whose release is gone) gets the side one ``GetRelease`` routed by the weights
reaches, so sessions start on the canary in the proportion the canary step sets. Without a canary
both sides report the same release and nothing is asked per session.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from hivemesh.common.v1.release_pb2 import Release, ReleasePart
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.sides import CANARY, SIDE_HEADER, SIDES, STABLE, STICKY_SERVICES
from hivemesh.planner.ports import Pinned, RunRelease
from hivemesh.release.v1 import release_service_pb2 as pb
from hivemesh.release.v1.release_service_pb2_grpc import ReleaseServiceStub

_log = logging.getLogger(__name__)

# The services besides the planner whose parts decide an answer (memory and the gateway do not).
DECIDING_SERVICES = STICKY_SERVICES
# Long enough that a busy planner asks a few times a minute; short enough that a canary step's new
# weights show in the recorded releases within seconds.
DEFAULT_MAX_AGE_S = 5.0
# A release is a description: asking for it never holds a run up for long.
ASK_TIMEOUT_S = 1.0


# service -> side -> the part that side reported
_Sides = dict[str, dict[str, ReleasePart]]


def _canary_runs(reported: dict[str, ReleasePart]) -> bool:
    stable, canary = reported.get(STABLE), reported.get(CANARY)
    return stable is not None and canary is not None and stable.label != canary.label


class GrpcReleases:
    def __init__(
        self,
        own: ReleasePart,
        channels: ChannelFactory,
        *,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        sticky: bool = False,
    ) -> None:
        self._own = own
        self._stubs = {name: ReleaseServiceStub(channels.channel(name)) for name in DECIDING_SERVICES}
        self._max_age_s = max_age_s
        self._sticky = sticky
        self._held: _Sides | None = None
        self._asked_at = 0.0
        self._lock = asyncio.Lock()

    async def current(self, pinned: Pinned | None = None, *, side: str | None = None) -> RunRelease:
        """The release a run starts on: on ``side`` when given (a task that names its side), else on
        the side of the release ``pinned`` finds (its session's last run's) while that runs.
        ``pinned`` is awaited only while a canary runs: outside one every side is the same."""
        known = await self._known()
        if not self._sticky:
            parts = [known[s][STABLE] for s in DECIDING_SERVICES if STABLE in known.get(s, {})]
            return RunRelease(Release(parts=[self._own, *parts]))
        labels: dict[str, str] = {}
        if pinned is not None and side is None and any(_canary_runs(known.get(s, {})) for s in known):
            found = await pinned()
            labels = {p.service: p.label for p in found.parts} if found is not None else {}
        if side is not None:
            # The side's own part: outside a canary that side's subset selects the stable pods.
            labels = {s: known[s][side].label for s in DECIDING_SERVICES if side in known.get(s, {})}
        chosen = await asyncio.gather(
            *(self._side(s, known.get(s, {}), labels.get(s)) for s in DECIDING_SERVICES)
        )
        sides = {s: side for s, side in zip(DECIDING_SERVICES, chosen, strict=True) if side is not None}
        release = Release(parts=[self._own])
        release.parts.extend(known[s][side] for s, side in sides.items())
        return RunRelease(release, sides)

    async def _side(self, service: str, reported: dict[str, ReleasePart], pinned: str | None) -> str | None:
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

    async def _known(self) -> _Sides:
        async with self._lock:
            if self._held is None or time.monotonic() - self._asked_at >= self._max_age_s:
                self._held = await self._ask()
                self._asked_at = time.monotonic()
            return self._held

    async def _ask(self) -> _Sides:
        asked = [(s, side) for s in DECIDING_SERVICES for side in (SIDES if self._sticky else (STABLE,))]
        # Without sticky sessions the one question is weighted (no header): whoever answers.
        answers = await asyncio.gather(
            *(self._ask_one(s, side=side if self._sticky else None) for s, side in asked)
        )
        found: _Sides = {}
        for (service, side), part in zip(asked, answers, strict=True):
            if part is not None:
                found.setdefault(service, {})[side] = part
        return found

    async def _ask_one(self, service: str, *, side: str | None) -> ReleasePart | None:
        metadata = () if side is None else ((SIDE_HEADER, side),)
        try:
            response: pb.GetReleaseResponse = await self._stubs[service].GetRelease(
                pb.GetReleaseRequest(), timeout=ASK_TIMEOUT_S, metadata=metadata
            )
        except grpc.aio.AioRpcError as exc:
            # The run does not depend on it: the task records the parts that answered.
            _log.warning("the %s service did not report its release: %s", service, exc.code().name)
            return None
        return response.release
