"""Client-side load balancing with outlier ejection: least outstanding requests over a set of
endpoints, an endpoint that fails is ejected for a while (longer each time) and probed back.

The same idea as Envoy's outlier detection, for places where the client chooses the replica itself:
the planner choosing a language pool, the language service choosing a model server. Everything runs
on the event loop, so the bookkeeping takes no lock; a probe runs as a task of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EjectionPolicy:
    """When an endpoint is taken out of rotation and how it comes back."""

    # Failures in a row that eject an endpoint (1: the first failure does).
    consecutive_failures: int = 1
    # The first ejection lasts this long; each further one in a row doubles it, up to the maximum.
    base_ejection_s: float = 5.0
    max_ejection_s: float = 60.0
    # Longest wait for a probe's answer.
    probe_timeout_s: float = 2.0


class Endpoint(Generic[T]):
    """One target (a channel, a model server) with its load and health."""

    def __init__(self, name: str, target: T, weight: float = 1.0) -> None:
        self.name = name
        self.target = target
        self.weight = weight
        # Calls in flight through this balancer.
        self.outstanding = 0
        self._failures = 0
        self._ejections = 0
        # time.monotonic() until which the endpoint is out; 0.0 while it is in rotation.
        self.ejected_until = 0.0
        # Ejected because the endpoint itself asked for time (a 429's Retry-After), not as an outlier.
        self.held = False
        self._probe: asyncio.Task[None] | None = None

    @property
    def ejected(self) -> bool:
        return self.ejected_until != 0.0

    @property
    def load(self) -> float:
        """Outstanding calls per unit of weight: what least-outstanding-requests compares."""
        return self.outstanding / self.weight

    def __repr__(self) -> str:
        state = "ejected" if self.ejected else "in"
        return f"Endpoint({self.name!r}, {state}, outstanding={self.outstanding})"


# Checks that a target answers; raises when it does not.
Probe = Callable[[T], Awaitable[None]]


class Balancer(Generic[T]):
    """Least outstanding requests over the endpoints in rotation, with outlier ejection.

    ``probe`` checks an ejected endpoint once its ejection ends; without one, the endpoint comes back
    on its own and the next real call decides (half-open). Call ``close`` to stop pending probes.
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint[T]],
        policy: EjectionPolicy | None = None,
        probe: Probe[T] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not endpoints:
            raise ValueError("a balancer needs at least one endpoint")
        self.endpoints = tuple(endpoints)
        self.policy = policy or EjectionPolicy()
        self._probe = probe
        self._clock = clock

    def available(self) -> list[Endpoint[T]]:
        """Endpoints in rotation now; starts the probes of ejected endpoints whose time is up."""
        now = 0.0
        result = []
        for endpoint in self.endpoints:
            if not endpoint.ejected:
                result.append(endpoint)
                continue
            now = now or self._clock()
            if now >= endpoint.ejected_until:
                if self._probe is None:
                    endpoint.ejected_until = 0.0  # half-open: the next call decides
                    result.append(endpoint)
                elif endpoint._probe is None:
                    endpoint._probe = asyncio.create_task(
                        self._run_probe(endpoint), name=f"probe-{endpoint.name}"
                    )
        return result

    def least_loaded(self, among: Sequence[Endpoint[T]] | None = None) -> Endpoint[T] | None:
        """The endpoint in rotation with the fewest outstanding calls per weight (the heavier on ties)."""
        candidates = self.available() if among is None else among
        best: Endpoint[T] | None = None
        for endpoint in candidates:
            if best is None or (endpoint.load, -endpoint.weight) < (best.load, -best.weight):
                best = endpoint
        return best

    def by_preference(self) -> list[Endpoint[T]]:
        """Every endpoint, those in rotation first (least loaded first), then the ejected ones by the
        end of their ejection: the order to try them in when each failure moves on to the next."""
        live = sorted(self.available(), key=lambda e: (e.load, -e.weight))
        out = sorted((e for e in self.endpoints if e.ejected), key=lambda e: e.ejected_until)
        return live + out

    @contextlib.contextmanager
    def track(self, endpoint: Endpoint[T]) -> Iterator[None]:
        """Counts a call as outstanding on ``endpoint`` while the block runs."""
        endpoint.outstanding += 1
        try:
            yield
        finally:
            endpoint.outstanding -= 1

    def succeeded(self, endpoint: Endpoint[T]) -> None:
        endpoint._failures = 0
        endpoint._ejections = 0
        endpoint.ejected_until = 0.0
        endpoint.held = False

    def failed(self, endpoint: Endpoint[T], *, hold_s: float | None = None) -> None:
        """Records a failure that says the endpoint is unwell; ``hold_s`` (a server's Retry-After)
        ejects it at once for at least that long."""
        endpoint._failures += 1
        if hold_s is None and endpoint._failures < self.policy.consecutive_failures:
            return
        policy = self.policy
        endpoint._failures = 0
        if hold_s is not None:
            # The server said when to come back: that long, not the growing ejection of an outlier.
            duration = min(hold_s, policy.max_ejection_s)
        else:
            duration = min(policy.max_ejection_s, policy.base_ejection_s * (2**endpoint._ejections))
            endpoint._ejections += 1
        until = self._clock() + duration
        if until > endpoint.ejected_until:
            if not endpoint.ejected:
                _log.warning("%s ejected for %.1fs", endpoint.name, duration)
            endpoint.ejected_until = until
            endpoint.held = hold_s is not None

    async def _run_probe(self, endpoint: Endpoint[T]) -> None:
        assert self._probe is not None  # only started with a probe
        try:
            async with asyncio.timeout(self.policy.probe_timeout_s):
                await self._probe(endpoint.target)
        except Exception as exc:  # any failure of the probe keeps the endpoint out, for longer
            _log.info("probe of %s failed: %s", endpoint.name, exc)
            endpoint._probe = None
            self._extend(endpoint)
            return
        endpoint._probe = None
        _log.info("%s answers its probe again: back in rotation", endpoint.name)
        endpoint._failures = 0
        endpoint.ejected_until = 0.0
        endpoint.held = False

    def _extend(self, endpoint: Endpoint[T]) -> None:
        policy = self.policy
        duration = min(policy.max_ejection_s, policy.base_ejection_s * (2**endpoint._ejections))
        endpoint._ejections += 1
        endpoint.ejected_until = self._clock() + duration

    async def close(self) -> None:
        probes = [e._probe for e in self.endpoints if e._probe is not None]
        for probe in probes:
            probe.cancel()
        for probe in probes:
            with contextlib.suppress(asyncio.CancelledError):
                await probe
