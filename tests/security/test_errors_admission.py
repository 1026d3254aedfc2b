"""The queue bound holds under a burst: one gateway process never admits more than
HIVEMESH_QUEUE_MAX_DEPTH tasks, however many submits race for the last places; the others are
answered RESOURCE_EXHAUSTED with RetryInfo."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.config import Settings
from hivemesh.mesh.status import details_of
from tests.security.errors_harness import serve
from tests.tasks.stores import REDIS_URL, postgres_database, redis_prefix

LIMIT = 20
BURST = 100


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("distributed", marks=[pytest.mark.redis, pytest.mark.postgres]),
    ]
)
async def bounded(
    request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Settings]:
    monkeypatch.setenv("HIVEMESH_QUEUE_MAX_DEPTH", str(LIMIT))
    if request.param == "embedded":
        yield settings
        return
    async with postgres_database() as url, redis_prefix() as prefix:
        monkeypatch.setenv("HIVEMESH_REDIS_PREFIX", prefix)
        yield replace(settings, database_url=url, redis_url=REDIS_URL)


async def test_a_burst_of_submits_admits_exactly_the_bound(bounded: Settings) -> None:
    # The gateway alone: nothing takes tasks off the queue while the burst lasts.
    async with serve(bounded, ["gateway"], "grpc") as served:
        stub = GatewayServiceStub(served.mesh.client("gateway"))
        scope = Scope(user_id="ana", session_id="s1")

        async def submit(number: int) -> str:
            try:
                await stub.SubmitTask(
                    gw.SubmitTaskRequest(request_id=f"burst-{number}", text="hi", scope=scope)
                )
            except grpc.aio.AioRpcError as exc:
                status = details_of(exc)
                assert status.retry_delay_s is not None
                return f"{status.code.name} {status.reason}"
            return "OK"

        outcomes = collections.Counter(await asyncio.gather(*(submit(n) for n in range(BURST))))
    assert outcomes == {"OK": LIMIT, "RESOURCE_EXHAUSTED QUEUE_FULL": BURST - LIMIT}
