"""Credentials, tenants and rate limits at the gateway, against a real server on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import TaskState
from hivemesh.gateway.app import key_store
from hivemesh.gateway.config import AuthMode, GatewayConfig
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.mesh.config import Settings
from hivemesh.mesh.status import StatusDetails, details_of
from tests.gateway.harness import Issuer, api_key, bearer, request_id, serve_gateway
from tests.support import keys_for, rpc_error
from tests.tasks.stores import REDIS_URL, postgres_database, redis_prefix

if TYPE_CHECKING:
    from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceAsyncStub

NO_LIMIT = 0.0


def submit(tenant: str = "") -> pb.SubmitTaskRequest:
    return pb.SubmitTaskRequest(
        request_id=request_id(),
        text="what is 2 + 2?",
        scope=Scope(tenant_id=tenant, user_id="ana", session_id="s"),
    )


def config(issuer: Issuer, *, rate: float = NO_LIMIT, burst: int = 1) -> GatewayConfig:
    return GatewayConfig(
        auth=AuthMode.REQUIRED,
        jwt_jwks=str(issuer.jwks_path),
        jwt_issuer="test-idp",
        rate_limit_per_s=rate,
        rate_limit_burst=burst,
    )


def assert_unauthenticated(status: StatusDetails, reason: str) -> None:
    assert status.code == grpc.StatusCode.UNAUTHENTICATED
    assert status.reason == reason
    assert status.domain == "hivemesh.gateway"


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer.create(tmp_path)


async def test_api_keys_admit_their_tenant_and_refuse_everything_else(
    settings: Settings, issuer: Issuer
) -> None:
    acme, globex = await keys_for(settings, "acme", "globex")
    async with serve_gateway(settings, config(issuer)) as gw:
        # No credentials at all.
        assert_unauthenticated(await rpc_error(gw.stub.SubmitTask(submit())), "CREDENTIALS_MISSING")
        # A key that was never issued, and a malformed one.
        forged = acme[:-4] + ("AAAA" if not acme.endswith("AAAA") else "BBBB")
        assert_unauthenticated(
            await rpc_error(gw.stub.SubmitTask(submit(), metadata=api_key(forged))), "API_KEY_INVALID"
        )
        assert_unauthenticated(
            await rpc_error(gw.stub.SubmitTask(submit(), metadata=api_key("not-a-key"))), "API_KEY_INVALID"
        )
        # A good key: the task belongs to the key's tenant.
        done: pb.SubmitTaskResponse = await gw.stub.SubmitTask(submit(), metadata=api_key(acme))
        assert done.task.scope.tenant_id == "acme"
        # Naming another tenant in the scope is refused, not silently rewritten.
        status = await rpc_error(gw.stub.SubmitTask(submit(tenant="globex"), metadata=api_key(acme)))
        assert status.code == grpc.StatusCode.PERMISSION_DENIED
        assert status.reason == "TENANT_MISMATCH"
        # Revocation takes effect on the next call.
        store = key_store(settings)
        await store.start()
        try:
            listed = {k.tenant_id: k for k in await store.list()}
            assert await store.revoke(listed["globex"].key_id)
        finally:
            await store.stop(0)
        status = await rpc_error(gw.stub.GetTask(pb.GetTaskRequest(task_id="x"), metadata=api_key(globex)))
        assert_unauthenticated(status, "API_KEY_REVOKED")
        assert status.metadata["key_id"] == listed["globex"].key_id


async def test_keys_are_stored_hashed(settings: Settings) -> None:
    (key,) = await keys_for(settings, "acme")
    secret = key.split("_", 2)[2]
    raw = (settings.data_dir / "gateway.db").read_bytes()
    assert secret.encode() not in raw


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_a_valid_jwt_names_the_tenant(settings: Settings, issuer: Issuer, algorithm: str) -> None:
    async with serve_gateway(settings, config(issuer)) as gw:
        token = issuer.token("initech", algorithm=algorithm)
        done: pb.SubmitTaskResponse = await gw.stub.SubmitTask(submit(), metadata=bearer(token))
        assert done.task.scope.tenant_id == "initech"


async def test_bad_jwts_are_unauthenticated(settings: Settings, issuer: Issuer) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "TOKEN_INVALID": issuer.token("acme", key=stranger),  # forged: right kid, wrong key
        "TOKEN_EXPIRED": issuer.token("acme", expires_in_s=-3600),
        "TENANT_CLAIM_MISSING": issuer.token(None),
    }
    async with serve_gateway(settings, config(issuer)) as gw:
        for reason, token in cases.items():
            status = await rpc_error(gw.stub.SubmitTask(submit(), metadata=bearer(token)))
            assert_unauthenticated(status, reason)
        # A symmetric token signed with the public key as its secret is refused outright.
        assert_unauthenticated(
            await rpc_error(gw.stub.SubmitTask(submit(), metadata=bearer("e30.e30.c2ln"))), "TOKEN_INVALID"
        )
        assert_unauthenticated(
            await rpc_error(gw.stub.SubmitTask(submit(), metadata=(("authorization", "Basic dTpw"),))),
            "TOKEN_INVALID",
        )


async def test_health_and_reflection_need_no_credentials(settings: Settings, issuer: Issuer) -> None:
    async with serve_gateway(settings, config(issuer)) as gw:
        health = health_pb2_grpc.HealthStub(gw.channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="readiness"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_another_tenants_task_is_not_found(settings: Settings, issuer: Issuer) -> None:
    acme, globex = await keys_for(settings, "acme", "globex")
    async with serve_gateway(settings, config(issuer)) as gw:
        mine: pb.SubmitTaskResponse = await gw.stub.SubmitTask(submit(), metadata=api_key(acme))
        task_id = mine.task.task_id
        for call in (
            gw.stub.GetTask(pb.GetTaskRequest(task_id=task_id), metadata=api_key(globex)),
            gw.stub.CancelTask(pb.CancelTaskRequest(task_id=task_id), metadata=api_key(globex)),
            gw.stub.GetDeadLetter(pb.GetDeadLetterRequest(task_id=task_id), metadata=api_key(globex)),
            gw.stub.VerifyTask(pb.VerifyTaskRequest(task_id=task_id), metadata=api_key(globex)),
            gw.stub.ReplayDeadLetter(
                pb.ReplayDeadLetterRequest(task_id=task_id, request_id="r"), metadata=api_key(globex)
            ),
        ):
            status = await rpc_error(call)
            assert status.code == grpc.StatusCode.NOT_FOUND
            assert status.reason == "TASK_NOT_FOUND"

        async def watch() -> None:
            async for _ in gw.stub.WatchTask(pb.WatchTaskRequest(task_id=task_id), metadata=api_key(globex)):
                pass

        assert (await rpc_error(watch())).code == grpc.StatusCode.NOT_FOUND
        theirs: pb.ListTasksResponse = await gw.stub.ListTasks(
            pb.ListTasksRequest(), metadata=api_key(globex)
        )
        assert list(theirs.tasks) == []
        named = await rpc_error(
            gw.stub.ListTasks(pb.ListTasksRequest(tenant_id="acme"), metadata=api_key(globex))
        )
        assert (named.code, named.reason) == (grpc.StatusCode.PERMISSION_DENIED, "TENANT_MISMATCH")
        own: pb.ListTasksResponse = await gw.stub.ListTasks(
            pb.ListTasksRequest(tenant_id="acme"), metadata=api_key(acme)
        )
        assert [t.task_id for t in own.tasks] == [task_id]
        ours = await gw.stub.ListTasks(pb.ListTasksRequest(), metadata=api_key(acme))
        assert [t.task_id for t in ours.tasks] == [task_id]
        verified: pb.VerifyTaskResponse = await gw.stub.VerifyTask(
            pb.VerifyTaskRequest(task_id=task_id), metadata=api_key(acme)
        )
        assert (verified.intact, verified.events, verified.broken_at) == (True, 1, 0)
        status = await rpc_error(gw.stub.VerifyTask(pb.VerifyTaskRequest(), metadata=api_key(acme)))
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in status.field_violations] == ["task_id"]
        # The owner still sees it, untouched by the other tenant's cancel.
        got: pb.GetTaskResponse = await gw.stub.GetTask(
            pb.GetTaskRequest(task_id=task_id), metadata=api_key(acme)
        )
        assert got.task.state == mine.task.state


async def burst(stubs: list[GatewayServiceAsyncStub], key: str, calls: int) -> list[StatusDetails | None]:
    """Fire ``calls`` GetTask calls at once; None for each admitted one (NOT_FOUND: nothing there)."""

    async def one(stub: GatewayServiceAsyncStub) -> StatusDetails | None:
        try:
            await stub.GetTask(pb.GetTaskRequest(task_id="nope"), metadata=api_key(key))
        except grpc.aio.AioRpcError as exc:
            found = details_of(exc)
            return None if found.code == grpc.StatusCode.NOT_FOUND else found
        return None

    return list(await asyncio.gather(*(one(stubs[i % len(stubs)]) for i in range(calls))))


async def test_a_burst_beyond_the_rate_limit_is_resource_exhausted(
    settings: Settings, issuer: Issuer
) -> None:
    acme, globex = await keys_for(settings, "acme", "globex")
    async with serve_gateway(settings, config(issuer, rate=1.0, burst=5)) as gw:
        results = await burst([gw.stub], acme, 8)
        limited = [r for r in results if r is not None]
        assert len(limited) == 3
        for status in limited:
            assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert status.reason == "RATE_LIMITED"
            assert status.metadata["tenant_id"] == "acme"
            assert status.retry_delay_s is not None
            assert status.retry_delay_s > 0
        # Another tenant has its own bucket.
        assert all(r is None for r in await burst([gw.stub], globex, 5))


@pytest.mark.redis
@pytest.mark.postgres
async def test_replicas_share_one_bucket_per_tenant_in_redis(
    settings: Settings, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with postgres_database() as url, redis_prefix() as prefix:
        distributed = replace(settings, database_url=url, redis_url=REDIS_URL)
        (acme,) = await keys_for(distributed, "acme")
        monkeypatch.setenv("HIVEMESH_REDIS_PREFIX", prefix)
        monkeypatch.setenv("HIVEMESH_QUEUE_SWEEP_INTERVAL", "0")
        async with (
            serve_gateway(distributed, config(issuer, rate=0.5, burst=6)) as one,
            serve_gateway(distributed, config(issuer, rate=0.5, burst=6)) as two,
        ):
            results = await burst([one.stub, two.stub], acme, 10)
    limited = [r for r in results if r is not None]
    assert len(limited) == 4  # one budget of 6 across both replicas, not 6 each
    assert {r.reason for r in limited} == {"RATE_LIMITED"}


async def viewer_key(settings: Settings, tenant: str) -> str:
    store = key_store(settings)
    await store.start()
    try:
        return (await store.create(tenant, name="dashboards", role="viewer"))[1]
    finally:
        await store.stop(0)


async def test_a_viewers_key_reads_and_changes_nothing(settings: Settings, issuer: Issuer) -> None:
    (acme,) = await keys_for(settings, "acme")
    viewer = await viewer_key(settings, "acme")
    async with serve_gateway(settings, config(issuer)) as gw:
        task = (await gw.stub.SubmitTask(submit(), metadata=api_key(acme))).task
        seen: pb.GetTaskResponse = await gw.stub.GetTask(
            pb.GetTaskRequest(task_id=task.task_id), metadata=api_key(viewer)
        )
        assert seen.task.task_id == task.task_id
        listed: pb.ListTasksResponse = await gw.stub.ListTasks(
            pb.ListTasksRequest(), metadata=api_key(viewer)
        )
        assert [t.task_id for t in listed.tasks] == [task.task_id]
        verified: pb.VerifyTaskResponse = await gw.stub.VerifyTask(
            pb.VerifyTaskRequest(task_id=task.task_id), metadata=api_key(viewer)
        )
        assert verified.intact
        await gw.stub.ListDeadLetters(pb.ListDeadLettersRequest(), metadata=api_key(viewer))
        for call in (
            gw.stub.SubmitTask(submit(), metadata=api_key(viewer)),
            gw.stub.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), metadata=api_key(viewer)),
            gw.stub.ContinueTask(
                pb.ContinueTaskRequest(task_id=task.task_id, request_id="a", text="km"),
                metadata=api_key(viewer),
            ),
            gw.stub.ReplayDeadLetter(
                pb.ReplayDeadLetterRequest(task_id=task.task_id, request_id="r"), metadata=api_key(viewer)
            ),
            gw.stub.PurgeDeadLetters(
                pb.PurgeDeadLettersRequest(request_id="p", all=True), metadata=api_key(viewer)
            ),
            gw.stub.InvokeTool(
                pb.InvokeToolRequest(request_id="c", tool_name="flip_coin", scope=Scope(user_id="ana")),
                metadata=api_key(viewer),
            ),
        ):
            status = await rpc_error(call)
            assert status.code == grpc.StatusCode.PERMISSION_DENIED
            assert status.reason == "READ_ONLY_CREDENTIAL"
        # The operator's key still acts: nothing the viewer tried went through.
        after: pb.GetTaskResponse = await gw.stub.GetTask(
            pb.GetTaskRequest(task_id=task.task_id), metadata=api_key(acme)
        )
        assert after.task.state != TaskState.TASK_STATE_CANCELED
        store = key_store(settings)
        await store.start()
        try:
            roles = {k.name: k.role for k in await store.list("acme")}
        finally:
            await store.stop(0)
        assert roles == {"acme test": "operator", "dashboards": "viewer"}


async def test_keys_issued_before_roles_keep_acting_as_operators(settings: Settings) -> None:
    # A key store as the first revision left it: no role column.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(settings.data_dir / "gateway.db")) as db, db:
        db.executescript(
            """
            CREATE TABLE gateway_alembic_version (version_num VARCHAR(32) PRIMARY KEY);
            INSERT INTO gateway_alembic_version VALUES ('0001');
            CREATE TABLE gateway_api_keys (
                key_id VARCHAR(32) PRIMARY KEY, tenant_id VARCHAR(128) NOT NULL, name VARCHAR(256) NOT NULL,
                secret_sha256 VARCHAR(64) NOT NULL, create_time FLOAT NOT NULL, revoke_time FLOAT
            );
            """
        )
        db.execute(
            "INSERT INTO gateway_api_keys VALUES ('k1', 'acme', 'old', ?, 1.0, NULL)",
            (hashlib.sha256(b"secret").hexdigest(),),
        )
    store = key_store(settings)
    await store.start()
    try:
        found = (await store.check("hmk_k1_secret")).key
    finally:
        await store.stop(0)
    assert found is not None
    assert (found.tenant_id, found.role, found.read_only) == ("acme", "operator", False)


async def test_a_viewers_jwt_reads_and_changes_nothing(settings: Settings, issuer: Issuer) -> None:
    async with serve_gateway(settings, config(issuer)) as gw:
        operator = bearer(issuer.token("acme", role="operator"))
        viewer = bearer(issuer.token("acme", algorithm="ES256", role="viewer"))
        task = (await gw.stub.SubmitTask(submit(), metadata=operator)).task
        listed: pb.ListTasksResponse = await gw.stub.ListTasks(pb.ListTasksRequest(), metadata=viewer)
        assert [t.task_id for t in listed.tasks] == [task.task_id]
        status = await rpc_error(
            gw.stub.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), metadata=viewer)
        )
        assert (status.code, status.reason) == (grpc.StatusCode.PERMISSION_DENIED, "READ_ONLY_CREDENTIAL")
        status = await rpc_error(
            gw.stub.ListTasks(pb.ListTasksRequest(), metadata=bearer(issuer.token("acme", role="admin")))
        )
        assert_unauthenticated(status, "ROLE_CLAIM_INVALID")
