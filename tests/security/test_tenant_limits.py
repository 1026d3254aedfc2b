"""One tenant cannot lock the others out: its streams and calls in flight have a limit of their own
at the gateway, below the server's, and Health answers even when the server's limit is reached.
Against a real gateway on port 0 with API keys, two or three tenants, and nothing taking tasks off
the queue (so a watched task stays open)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.gateway.config import AuthMode, GatewayConfig
from hivemesh.gateway.service import Caller
from hivemesh.gateway.tenant_limits import CALLS_EXHAUSTED, STREAMS_EXHAUSTED, TenantLimits
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.config import ConfigError, Settings
from hivemesh.mesh.errors import ResourceExhausted
from hivemesh.mesh.status import StatusDetails
from tests.gateway.harness import ServedGateway, api_key, request_id, serve_gateway
from tests.support import keys_for, rpc_error

if TYPE_CHECKING:
    from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceAsyncStub

MAX_STREAMS = 3


def limited(*, streams: int = MAX_STREAMS, in_flight: int = MAX_STREAMS + 1) -> GatewayConfig:
    return GatewayConfig(
        auth=AuthMode.REQUIRED,
        rate_limit_per_s=0.0,
        tenant_max_streams=streams,
        tenant_max_in_flight=in_flight,
    )


async def submit(gw: ServedGateway, key: str) -> str:
    done: pb.SubmitTaskResponse = await gw.stub.SubmitTask(
        pb.SubmitTaskRequest(request_id=request_id(), text="hi", scope=Scope(user_id="u", session_id="s")),
        metadata=api_key(key),
    )
    return done.task.task_id


async def watch(
    stub: GatewayServiceAsyncStub, task_id: str, key: str, *, deadline_s: float | None = None
) -> grpc.aio.UnaryStreamCall[pb.WatchTaskRequest, pb.WatchTaskResponse]:
    """A WatchTask stream that has read the task's first event: it holds its slot."""
    call = stub.WatchTask(pb.WatchTaskRequest(task_id=task_id), metadata=api_key(key), timeout=deadline_s)
    await call.read()
    return call


def assert_refused(status: StatusDetails, reason: str, tenant: str, limit: int) -> None:
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status.reason == reason
    assert status.metadata == {"tenant_id": tenant, "limit": str(limit)}
    assert status.retry_delay_s is not None
    assert status.retry_delay_s > 0


async def serving(gw: ServedGateway) -> bool:
    health = health_pb2_grpc.HealthStub(gw.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="readiness"), timeout=5)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def until_admitted(stub: GatewayServiceAsyncStub, task_id: str, key: str) -> None:
    """Open a stream again, waiting (briefly) for the server to see the old ones end."""
    for _ in range(100):
        try:
            (await watch(stub, task_id, key)).cancel()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            await asyncio.sleep(0.05)
        else:
            return
    raise AssertionError("the tenant's slots were not given back")


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[tuple[ServedGateway, str, str]]:
    acme, globex = await keys_for(settings, "acme", "globex")
    async with serve_gateway(settings, limited()) as gw:
        yield gw, acme, globex


async def test_a_tenant_at_its_stream_limit_does_not_stop_the_others(
    gateway: tuple[ServedGateway, str, str],
) -> None:
    gw, acme, globex = gateway
    task = await submit(gw, acme)
    held = [await watch(gw.stub, task, acme) for _ in range(MAX_STREAMS)]

    # Beyond its limit, acme is refused with RetryInfo, for watching and for executing alike.
    assert_refused(await rpc_error(watch(gw.stub, task, acme)), STREAMS_EXHAUSTED, "acme", MAX_STREAMS)
    execute = gw.stub.ExecuteTask(
        pb.ExecuteTaskRequest(request_id=request_id(), text="hi", scope=Scope(user_id="u", session_id="s")),
        metadata=api_key(acme),
    )
    assert_refused(await rpc_error(execute.read()), STREAMS_EXHAUSTED, "acme", MAX_STREAMS)
    # Its unary calls still have room (one call in flight left).
    assert (await gw.stub.GetTask(pb.GetTaskRequest(task_id=task), metadata=api_key(acme))).task.task_id

    # globex submits, reads and watches as if acme were not there; readiness answers.
    theirs = await submit(gw, globex)
    got: pb.GetTaskResponse = await gw.stub.GetTask(
        pb.GetTaskRequest(task_id=theirs), metadata=api_key(globex)
    )
    assert got.task.scope.tenant_id == "globex"
    (await watch(gw.stub, theirs, globex)).cancel()
    assert await serving(gw)

    for call in held:
        call.cancel()
    await until_admitted(gw.stub, task, acme)


async def test_streams_give_their_slots_back_however_they_end(
    gateway: tuple[ServedGateway, str, str],
) -> None:
    gw, acme, _ = gateway
    task = await submit(gw, acme)
    # One stream is cancelled, one runs out of time, one loses its client (the connection closes).
    cancelled = await watch(gw.stub, task, acme)
    expiring = await watch(gw.stub, task, acme, deadline_s=1.0)
    other = grpc.aio.insecure_channel(f"127.0.0.1:{gw.server.port}")
    await watch(GatewayServiceStub(other), task, acme)
    assert_refused(await rpc_error(watch(gw.stub, task, acme)), STREAMS_EXHAUSTED, "acme", MAX_STREAMS)

    cancelled.cancel()
    await other.close(None)
    assert (await rpc_error(expiring.read())).code == grpc.StatusCode.DEADLINE_EXCEEDED

    # All three slots are free again: acme opens its limit of streams once more.
    await until_admitted(gw.stub, task, acme)
    again = [await watch(gw.stub, task, acme) for _ in range(MAX_STREAMS)]
    for call in again:
        call.cancel()


async def test_streams_count_as_calls_in_flight(settings: Settings) -> None:
    acme, globex = await keys_for(settings, "acme", "globex")
    async with serve_gateway(settings, limited(streams=2, in_flight=2)) as gw:
        task = await submit(gw, acme)
        held = [await watch(gw.stub, task, acme) for _ in range(2)]
        status = await rpc_error(gw.stub.GetTask(pb.GetTaskRequest(task_id=task), metadata=api_key(acme)))
        assert_refused(status, CALLS_EXHAUSTED, "acme", 2)
        assert await submit(gw, globex)
        for call in held:
            call.cancel()


async def test_health_answers_when_the_server_is_full(settings: Settings) -> None:
    """Two tenants, each at its limit, fill the server: a third is refused with RetryInfo, and
    Health still answers."""
    narrow = replace(settings, server=replace(settings.server, max_concurrent_rpcs=2 * MAX_STREAMS))
    acme, globex, initech = await keys_for(narrow, "acme", "globex", "initech")
    async with serve_gateway(narrow, limited(in_flight=MAX_STREAMS)) as gw:
        mine, theirs = await submit(gw, acme), await submit(gw, globex)
        held = [
            await watch(gw.stub, t, k)
            for t, k in ((mine, acme), (theirs, globex))
            for _ in range(MAX_STREAMS)
        ]

        status = await rpc_error(gw.stub.GetTask(pb.GetTaskRequest(task_id=mine), metadata=api_key(initech)))
        assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert status.reason == "SERVER_BUSY"
        assert status.metadata == {"limit": str(2 * MAX_STREAMS)}
        assert status.retry_delay_s is not None
        assert status.retry_delay_s > 0
        assert await serving(gw)

        # One stream of globex ends: its slot serves the next call.
        held.pop().cancel()
        for _ in range(100):
            try:
                await gw.stub.GetTask(pb.GetTaskRequest(task_id=theirs), metadata=api_key(globex))
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the server's slot was not given back")
        for call in held:
            call.cancel()


async def test_a_tenant_limit_at_the_server_limit_is_refused_at_start(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="HIVEMESH_TENANT_MAX_IN_FLIGHT"):
        async with serve_gateway(settings, limited(in_flight=settings.server.max_concurrent_rpcs)):
            pass


def test_the_limits_of_the_environment_are_checked() -> None:
    config = GatewayConfig.from_env(
        {"HIVEMESH_TENANT_MAX_STREAMS": "8", "HIVEMESH_TENANT_MAX_IN_FLIGHT": "16"}
    )
    assert (config.tenant_max_streams, config.tenant_max_in_flight) == (8, 16)
    defaults = GatewayConfig.from_env({})
    assert (defaults.tenant_max_streams, defaults.tenant_max_in_flight) == (64, 128)
    with pytest.raises(ConfigError, match="HIVEMESH_TENANT_MAX_STREAMS"):
        GatewayConfig.from_env({"HIVEMESH_TENANT_MAX_STREAMS": "32", "HIVEMESH_TENANT_MAX_IN_FLIGHT": "16"})
    with pytest.raises(ConfigError, match="HIVEMESH_TENANT_MAX_IN_FLIGHT"):
        GatewayConfig.from_env({"HIVEMESH_TENANT_MAX_IN_FLIGHT": "0"})


def test_a_slot_is_given_back_when_its_call_fails() -> None:
    limits = TenantLimits(max_in_flight=1, max_streams=1)
    acme = Caller("acme")
    with pytest.raises(RuntimeError), limits.hold(acme, stream=True):
        raise RuntimeError("the handler failed")
    with limits.hold(acme, stream=True):
        assert limits.open_calls("acme") == 1
        with pytest.raises(ResourceExhausted), limits.hold(acme):
            pass
    # Nothing is kept for a tenant with nothing open; callers without a tenant are not counted.
    assert limits.open_calls("acme") == 0
    with limits.hold(Caller(None)), limits.hold(Caller(None)):
        assert limits.open_calls("acme") == 0
