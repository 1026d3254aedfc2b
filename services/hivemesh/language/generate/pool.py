"""Several OpenAI-compatible model servers behind Generate (``HIVEMESH_LLM_BACKENDS``).

Choice: the roles are tried in order (primary, fallback, hosted). Within a role, a call with a
session id goes to the session's server by weighted rendezvous hashing (consistent hashing: adding
or losing a server moves only the sessions it held), unless that server already carries more than
its share of the role's outstanding calls (bounded load); a call without one goes to the server
with the fewest outstanding calls per weight.

Failover: a connection error, a 5xx, a timeout or a 429 before any text or tool call reached the
caller moves the call to the next server; a 429 takes its server out for its ``Retry-After``, and
``eject_after`` failures in a row take it out for ``eject_for_s`` (doubling), after which a probe
(``GET /models``) brings it back. While more servers remain, an attempt gets at most half of what is
left of the call's deadline to produce its first piece, so a slow server leaves time for the next.

A stream that already delivered text is never restarted on another server: the caller would see
the text twice and the tokens would be paid twice. It fails with ``LLM_STREAM_INTERRUPTED``
(UNAVAILABLE, ``delivered=true`` in the metadata) and the planner decides, as with one server. A
completed stream is never sent anywhere else.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import AsyncIterator, Sequence

from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter

from hivemesh.language.generate.config import PoolConfig, Role
from hivemesh.language.generate.openai_compat import OpenAICompatibleBackend
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.mesh import deadlines
from hivemesh.mesh.balancer import Balancer, EjectionPolicy, Endpoint
from hivemesh.mesh.errors import DeadlineExceeded, HivemeshError, ResourceExhausted, Unavailable
from hivemesh.mesh.metrics import Metrics

# A session's server keeps its calls while it carries at most this multiple of its fair share.
LOAD_BOUND = 1.25
ROLE_ORDER = (Role.PRIMARY, Role.FALLBACK, Role.HOSTED)


class LLMMetrics:
    """Calls and tokens per model server, for the Prometheus registry of the process."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.calls = Counter(
            "hivemesh_llm_calls",
            "Generate attempts per model server, by outcome (ok, failed_over, failed, interrupted).",
            ["backend", "role", "outcome"],
            registry=registry,
        )
        self.tokens = Counter(
            "hivemesh_llm_tokens",
            "Tokens billed by each model server, by kind (prompt, completion).",
            ["backend", "role", "kind"],
            registry=registry,
        )


def rendezvous_score(key: str, endpoint: Endpoint[OpenAICompatibleBackend]) -> float:
    """Weighted rendezvous (highest random weight) score of ``endpoint`` for ``key``."""
    digest = hashlib.blake2b(f"{key}\0{endpoint.name}".encode(), digest_size=8).digest()
    unit = (int.from_bytes(digest, "big") + 1) / (2**64 + 2)  # in (0, 1)
    return -endpoint.weight / math.log(unit)


class BackendPool:
    """A ``GenerateBackend`` over several model servers; see the module's docstring."""

    def __init__(
        self,
        config: PoolConfig,
        metrics: LLMMetrics | None = None,
        *,
        backends: Sequence[OpenAICompatibleBackend] | None = None,
        call_metrics: Metrics | None = None,
    ) -> None:
        # Each server's calls are timed and their tokens counted in ``call_metrics`` (per model).
        made = backends or [
            OpenAICompatibleBackend(spec.llm, metrics=call_metrics) for spec in config.backends
        ]
        self._roles = {spec.name: spec.role for spec in config.backends}
        self._endpoints = [
            Endpoint(spec.name, backend, spec.weight)
            for spec, backend in zip(config.backends, made, strict=True)
        ]
        policy = EjectionPolicy(
            consecutive_failures=config.eject_after,
            base_ejection_s=config.eject_for_s,
            max_ejection_s=config.eject_for_s * 16,
        )
        self._balancer = Balancer(self._endpoints, policy, probe=_probe)
        self._tiers = [[e for e in self._endpoints if self._roles[e.name] is role] for role in ROLE_ORDER]
        self._metrics = metrics or LLMMetrics(None)

    @property
    def endpoints(self) -> Sequence[Endpoint[OpenAICompatibleBackend]]:
        return self._endpoints

    def order(self, session_id: str) -> list[Endpoint[OpenAICompatibleBackend]]:
        """The servers a call tries, in order: each role's servers in rotation (the session's own
        first), then, when none is in rotation at all, the ejected ones that gave no Retry-After."""
        available = set(map(id, self._balancer.available()))
        order: list[Endpoint[OpenAICompatibleBackend]] = []
        for tier in self._tiers:
            live = [e for e in tier if id(e) in available]
            if not live:
                continue
            by_load = sorted(live, key=lambda e: (e.load, -e.weight))
            home = max(live, key=lambda e: rendezvous_score(session_id, e)) if session_id else None
            if home is not None and _within_bound(home, live):
                by_load.remove(home)
                by_load.insert(0, home)
            order.extend(by_load)
        if not order:
            ejected = [e for e in self._endpoints if e.ejected and not e.held]
            order = sorted(ejected, key=lambda e: e.ejected_until)
        return order

    async def generate(self, request: pb.GenerateRequest) -> AsyncIterator[pb.GenerateResponse]:
        order = self.order(request.session_id)
        if not order:
            soonest = min(e.ejected_until for e in self._endpoints) - time.monotonic()
            raise ResourceExhausted(
                "every model server asked to be left alone for a while (429 with Retry-After)",
                retry_after_s=max(0.0, soonest),
                reason="LLM_RATE_LIMITED",
            )
        last: HivemeshError | None = None
        for position, endpoint in enumerate(order):
            left = deadlines.remaining()
            if left is not None and left <= 0:
                break
            # Half of what is left, while another server could still take the call.
            budget = left / 2 if left is not None and position + 1 < len(order) else None
            try:
                async for piece in self._attempt(endpoint, request, budget):
                    yield piece
            except _FailedOver as failed:
                last = failed.error
                continue
            return
        if last is None:
            raise DeadlineExceeded(
                "the call's deadline passed before a model server answered", reason="LLM_TIMEOUT"
            )
        raise last

    async def _attempt(
        self,
        endpoint: Endpoint[OpenAICompatibleBackend],
        request: pb.GenerateRequest,
        first_budget: float | None,
    ) -> AsyncIterator[pb.GenerateResponse]:
        """One server's try; raises ``_FailedOver`` when the next server may take the call."""
        role = self._roles[endpoint.name].value
        outcomes = self._metrics.calls
        delivered = False
        with self._balancer.track(endpoint):
            stream = endpoint.target.generate(request)
            try:
                async with asyncio.timeout(first_budget):
                    piece = await anext(stream, None)
                span = trace.get_current_span()
                span.set_attribute("hivemesh.llm.backend", endpoint.name)
                while piece is not None:
                    kind = piece.WhichOneof("kind")
                    if kind == "usage":
                        self._bill(endpoint.name, role, piece.usage, span)
                    elif kind in ("text_delta", "tool_call"):
                        delivered = True
                    yield piece
                    piece = await anext(stream, None)
            except TimeoutError:
                self._balancer.failed(endpoint)
                outcomes.labels(endpoint.name, role, "failed_over").inc()
                raise _FailedOver(
                    Unavailable(
                        f"{endpoint.name} sent nothing within {first_budget or 0:.2f}s",
                        reason="LLM_TIMEOUT",
                        metadata={"backend": endpoint.name},
                    )
                ) from None
            except (Unavailable, ResourceExhausted) as exc:
                hold = exc.retry_after_s if isinstance(exc, ResourceExhausted) else None
                self._balancer.failed(endpoint, hold_s=hold)
                exc.metadata.update(backend=endpoint.name)
                if delivered:
                    # Restarting elsewhere would repeat text the caller already has.
                    outcomes.labels(endpoint.name, role, "interrupted").inc()
                    exc.metadata.update(delivered="true")
                    raise
                outcomes.labels(endpoint.name, role, "failed_over").inc()
                raise _FailedOver(exc) from exc
            except HivemeshError:
                # The request itself was refused (4xx): another server would refuse it too.
                outcomes.labels(endpoint.name, role, "failed").inc()
                raise
            finally:
                await stream.aclose()
        self._balancer.succeeded(endpoint)
        outcomes.labels(endpoint.name, role, "ok").inc()

    def _bill(self, name: str, role: str, usage: pb.Usage, span: trace.Span) -> None:
        self._metrics.tokens.labels(name, role, "prompt").inc(usage.prompt_tokens)
        self._metrics.tokens.labels(name, role, "completion").inc(usage.completion_tokens)
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)

    async def aclose(self) -> None:
        await self._balancer.close()
        for endpoint in self._endpoints:
            await endpoint.target.aclose()


class _FailedOver(Exception):
    """An attempt failed before the caller saw anything: the next server may take the call."""

    def __init__(self, error: HivemeshError) -> None:
        super().__init__(error.message)
        self.error = error


def _within_bound(
    home: Endpoint[OpenAICompatibleBackend], live: Sequence[Endpoint[OpenAICompatibleBackend]]
) -> bool:
    total_weight = sum(e.weight for e in live)
    outstanding = sum(e.outstanding for e in live) + 1
    return home.outstanding + 1 <= math.ceil(LOAD_BOUND * outstanding * home.weight / total_weight)


async def _probe(backend: OpenAICompatibleBackend) -> None:
    await backend.probe()
