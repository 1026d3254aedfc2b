"""The release a run starts on: the planner's own part, and the parts the language and tool services
report (``ReleaseService.GetRelease``), asked at most once per ``max_age_s`` and shared by every
worker of the process, so recording it costs a task nothing but a copy."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from hivemesh.common.v1.release_pb2 import Release, ReleasePart
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.release.v1 import release_service_pb2 as pb
from hivemesh.release.v1.release_service_pb2_grpc import ReleaseServiceStub

_log = logging.getLogger(__name__)

# The services besides the planner whose parts decide an answer (memory and the gateway do not).
DECIDING_SERVICES = ("language", "tool")
# Long enough that a busy planner asks a few times a minute; short enough that a canary step's new
# weights show in the recorded releases within seconds.
DEFAULT_MAX_AGE_S = 5.0
# A release is a description: asking for it never holds a run up for long.
ASK_TIMEOUT_S = 1.0


class GrpcReleases:
    def __init__(
        self, own: ReleasePart, channels: ChannelFactory, *, max_age_s: float = DEFAULT_MAX_AGE_S
    ) -> None:
        self._own = own
        self._stubs = {name: ReleaseServiceStub(channels.channel(name)) for name in DECIDING_SERVICES}
        self._max_age_s = max_age_s
        self._held: Release | None = None
        self._asked_at = 0.0
        self._lock = asyncio.Lock()

    async def current(self) -> Release:
        async with self._lock:
            if self._held is None or time.monotonic() - self._asked_at >= self._max_age_s:
                self._held = await self._ask()
                self._asked_at = time.monotonic()
            return self._held

    async def _ask(self) -> Release:
        answers = await asyncio.gather(*(self._ask_one(name) for name in DECIDING_SERVICES))
        release = Release(parts=[self._own])
        release.parts.extend(part for part in answers if part is not None)
        return release

    async def _ask_one(self, service: str) -> ReleasePart | None:
        try:
            response: pb.GetReleaseResponse = await self._stubs[service].GetRelease(
                pb.GetReleaseRequest(), timeout=ASK_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            # The run does not depend on it: the task records the parts that answered.
            _log.warning("the %s service did not report its release: %s", service, exc.code().name)
            return None
        return response.release
