"""Calls and streams one tenant may have open at once in this gateway process.

The server admits at most ``HIVEMESH_MAX_CONCURRENT_RPCS`` calls at once (``mesh/admission``).
Without a share per tenant, one tenant's streams, each within its rate limit and each open for as
long as its task runs, could hold every one of them. Every call of a tenant counts against
``max_in_flight``, its streams (ExecuteTask, WatchTask) against ``max_streams`` as well; a call
beyond either is RESOURCE_EXHAUSTED with RetryInfo, and ErrorInfo names the limit. Callers without
a tenant (authentication off) are not counted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

from hivemesh.gateway.service import Caller
from hivemesh.mesh.bulkhead import RefusingBulkhead
from hivemesh.mesh.errors import ResourceExhausted

# What a refused caller is told to wait: a slot comes free when one of its own calls ends.
RETRY_AFTER_S = 1.0
STREAMS_EXHAUSTED = "TENANT_STREAMS_EXHAUSTED"
CALLS_EXHAUSTED = "TENANT_CALLS_EXHAUSTED"


class TenantLimits:
    def __init__(self, max_in_flight: int, max_streams: int) -> None:
        self._max_in_flight = max_in_flight
        self._max_streams = max_streams
        # Tenants with calls open only: (calls, streams).
        self._open: dict[str, tuple[RefusingBulkhead, RefusingBulkhead]] = {}

    def open_calls(self, tenant_id: str) -> int:
        found = self._open.get(tenant_id)
        return 0 if found is None else found[0].running

    @contextlib.contextmanager
    def hold(self, caller: Caller, *, stream: bool = False) -> Iterator[None]:
        """A slot of the caller's tenant for the body of the ``with``; it is given back however the
        body ends (an error, the call's cancellation, a generator closed early)."""
        tenant = caller.tenant_id
        if tenant is None:
            yield
            return
        calls, streams = self._open.setdefault(
            tenant, (RefusingBulkhead(self._max_in_flight), RefusingBulkhead(self._max_streams))
        )
        if stream and not streams.try_enter():
            self._refuse(tenant, calls, STREAMS_EXHAUSTED, "open streams", self._max_streams)
        if not calls.try_enter():
            if stream:
                streams.leave()
            self._refuse(tenant, calls, CALLS_EXHAUSTED, "calls in flight", self._max_in_flight)
        try:
            yield
        finally:
            calls.leave()
            if stream:
                streams.leave()
            self._forget_if_idle(tenant, calls)

    def _forget_if_idle(self, tenant: str, calls: RefusingBulkhead) -> None:
        # Every stream is also a call: no call open means nothing open.
        found = self._open.get(tenant)
        if calls.running == 0 and found is not None and found[0] is calls:
            del self._open[tenant]

    def _refuse(self, tenant: str, calls: RefusingBulkhead, reason: str, what: str, limit: int) -> NoReturn:
        self._forget_if_idle(tenant, calls)
        raise ResourceExhausted(
            f"tenant {tenant} already has its limit of {limit} {what} at this gateway; "
            "try again once one has ended",
            retry_after_s=RETRY_AFTER_S,
            reason=reason,
            metadata={"tenant_id": tenant, "limit": str(limit)},
        )
