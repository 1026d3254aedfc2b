"""Internal services believe no tenant a request names: they act for the tenant and user of the mesh
credential the gateway signed for the task, and refuse calls without one.

The reproducer: with no credentials at all, ``MemoryService/Recall`` for acme's user returned acme's
secret and ``Remember`` overwrote it, and the same held for GetContext, ListRecords, ``ToolService/
InvokeTool list_show`` and ``PlannerService/RunTask``. Every one of these calls is made here against
real servers, over gRPC, without a credential, with a forged or foreign one, and with the right one.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, select

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import TaskState
from hivemesh.gateway.app import key_store
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.language.v1 import language_service_pb2 as lang
from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceStub
from hivemesh.memory.v1 import memory_service_pb2 as mem
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.config import Settings
from hivemesh.mesh.credentials import AUDIENCE, CREDENTIAL_HEADER, ISSUER, Minter, write_key_pair
from hivemesh.planner.v1 import planner_service_pb2 as plan
from hivemesh.planner.v1.planner_service_pb2_grpc import PlannerServiceStub
from hivemesh.tasks import schema
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub

if TYPE_CHECKING:
    from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceAsyncStub

from tests.support import RunningMesh, mesh_minter, rpc_error, start_mesh

ACME = Scope(tenant_id="acme", user_id="ana", session_id="s1")
Metadata = tuple[tuple[str, str], ...]
ROOT = Path(__file__).resolve().parents[2]


def as_(token: str) -> Metadata:
    return ((CREDENTIAL_HEADER, token),)


@pytest.fixture
async def mesh(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningMesh]:
    monkeypatch.setenv("HIVEMESH_AUTH", "required")
    running = await start_mesh(settings)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def minter(settings: Settings) -> Minter:
    return mesh_minter(settings)


def memory(mesh: RunningMesh) -> MemoryServiceAsyncStub:
    stub: MemoryServiceAsyncStub = MemoryServiceStub(mesh.bare_client("memory"))
    return stub


async def remember_the_pin(mesh: RunningMesh, minter: Minter) -> None:
    await memory(mesh).Remember(
        mem.RememberRequest(scope=ACME, text="my bank pin is 4921", request_id="pin-1"),
        metadata=as_(minter.mint("acme", "ana")),
    )


def list_show() -> tool.InvokeToolRequest:
    arguments = struct_pb2.Struct()
    arguments.update({"list": "shopping"})
    return tool.InvokeToolRequest(tool_name="list_show", arguments=arguments, scope=ACME, task_id="t1")


def the_reproducers(mesh: RunningMesh) -> list[tuple[str, object]]:
    """Each call of the finding, as a zero-argument call maker taking metadata."""
    memory_stub = memory(mesh)
    tools = ToolServiceStub(mesh.bare_client("tool"))
    planner = PlannerServiceStub(mesh.bare_client("planner"))
    language = LanguageServiceStub(mesh.bare_client("language"))
    return [
        (
            "Recall",
            lambda md: memory_stub.Recall(mem.RecallRequest(scope=ACME, text="bank pin"), metadata=md),
        ),
        (
            "Remember",
            lambda md: memory_stub.Remember(
                mem.RememberRequest(scope=ACME, text="my bank pin is 0000", request_id="evil"), metadata=md
            ),
        ),
        ("GetContext", lambda md: memory_stub.GetContext(mem.GetContextRequest(scope=ACME), metadata=md)),
        (
            "ListRecords",
            lambda md: memory_stub.ListRecords(mem.ListRecordsRequest(scope=ACME, kind="list"), metadata=md),
        ),
        ("InvokeTool list_show", lambda md: tools.InvokeTool(list_show(), metadata=md)),
        (
            "RunTask",
            lambda md: planner.RunTask(
                plan.RunTaskRequest(text="what is my bank pin?", scope=ACME), metadata=md
            ).read(),
        ),
        ("Understand", lambda md: language.Understand(lang.UnderstandRequest(text="hello"), metadata=md)),
    ]


async def test_a_call_without_a_credential_is_unauthenticated_and_changes_nothing(
    mesh: RunningMesh, minter: Minter
) -> None:
    await remember_the_pin(mesh, minter)
    for name, call in the_reproducers(mesh):
        status = await rpc_error(call(()))  # type: ignore[operator]
        assert status.code == grpc.StatusCode.UNAUTHENTICATED, name
        assert status.reason == "CREDENTIAL_MISSING", name
    recalled = await memory(mesh).Recall(
        mem.RecallRequest(scope=ACME, text="bank pin"), metadata=as_(minter.mint("acme", "ana"))
    )
    assert [h.memory.text for h in recalled.hits] == ["my bank pin is 4921"]  # not overwritten


async def test_another_tenants_or_users_credential_is_permission_denied(
    mesh: RunningMesh, minter: Minter
) -> None:
    await remember_the_pin(mesh, minter)
    for credential, field in (
        (minter.mint("globex", "ana"), "scope.tenant_id"),
        (minter.mint("acme", "bob"), "scope.user_id"),
    ):
        for name, call in the_reproducers(mesh):
            if name == "Understand":
                continue  # names no scope: any valid credential may ask
            status = await rpc_error(call(as_(credential)))  # type: ignore[operator]
            assert status.code == grpc.StatusCode.PERMISSION_DENIED, name
            assert status.reason == "SCOPE_MISMATCH", name
            assert status.metadata["field"] == field, name


def forged(settings: Settings, **changes: object) -> str:
    """A credential like the mesh's with ``changes`` to its claims (None drops one), signed by the
    mesh's own key: only the claims can be what is refused."""
    path = settings.data_dir / "mesh" / "signing-key.pem"
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "ana",
        "tenant": "acme",
        "iat": now,
        "exp": now + 60,
        **changes,
    }
    key = load_pem_private_key(path.read_bytes(), None)
    present = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(present, key, algorithm="ES256", headers={"kid": Minter(path).key_id})  # type: ignore[arg-type]


async def test_invalid_credentials_are_unauthenticated_with_their_reason(
    mesh: RunningMesh, settings: Settings, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    write_key_pair(ec.generate_private_key(ec.SECP256R1()), stranger / "key.pem", stranger / "jwks.json")
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "ana", "tenant": "acme", "exp": int(time.time()) + 60},
        "",
        algorithm="none",
    )
    shared_secret = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "ana", "tenant": "acme", "exp": int(time.time()) + 60},
        "secret" * 8,
        algorithm="HS256",
    )
    cases = {
        "not a jwt": ("garbage", "CREDENTIAL_INVALID"),
        "alg none": (unsigned, "CREDENTIAL_INVALID"),
        "HS256": (shared_secret, "CREDENTIAL_INVALID"),
        "another key": (Minter(stranger / "key.pem").mint("acme", "ana"), "CREDENTIAL_UNKNOWN_KEY"),
        "expired": (
            forged(settings, iat=int(time.time()) - 600, exp=int(time.time()) - 300),
            "CREDENTIAL_EXPIRED",
        ),
        "wrong audience": (forged(settings, aud="someone-else"), "CREDENTIAL_INVALID"),
        "wrong issuer": (forged(settings, iss="someone-else"), "CREDENTIAL_INVALID"),
        "no tenant": (forged(settings, tenant=None), "CREDENTIAL_INVALID"),
    }
    stub = memory(mesh)
    for name, (credential, reason) in cases.items():
        status = await rpc_error(
            stub.Recall(mem.RecallRequest(scope=ACME, text="bank pin"), metadata=as_(credential))
        )
        assert status.code == grpc.StatusCode.UNAUTHENTICATED, name
        assert status.reason == reason, name


async def test_health_and_reflection_stay_open(mesh: RunningMesh) -> None:
    for service in ("planner", "language", "memory", "tool"):
        health = health_pb2_grpc.HealthStub(mesh.bare_client(service))
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    listed = await asyncio.to_thread(
        subprocess.run,
        [str(ROOT / ".venv" / "bin" / "grpcurl"), "-plaintext", mesh.address("memory"), "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "hivemesh.memory.v1.MemoryService" in listed.stdout, listed.stderr


async def test_the_scope_comes_from_the_credential_when_the_request_leaves_it_empty(
    mesh: RunningMesh, minter: Minter
) -> None:
    stub = memory(mesh)
    await stub.Remember(
        mem.RememberRequest(scope=Scope(session_id="s1"), text="my locker is 12", request_id="r1"),
        metadata=as_(minter.mint("acme", "ana")),
    )
    recalled = await stub.Recall(
        mem.RecallRequest(scope=ACME, text="locker"), metadata=as_(minter.mint("acme", "ana"))
    )
    assert [h.memory.text for h in recalled.hits] == ["my locker is 12"]
    # A credential for a whole tenant (no user) fills in nothing for the user: still required.
    status = await rpc_error(
        stub.Recall(
            mem.RecallRequest(scope=Scope(tenant_id="acme"), text="locker"),
            metadata=as_(minter.mint("acme", "")),
        )
    )
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "scope.user_id" in [f for f, _ in status.field_violations]


async def test_a_task_acts_for_its_own_tenant_and_user_on_every_hop(
    mesh: RunningMesh, settings: Settings, minter: Minter
) -> None:
    store = key_store(settings)
    await store.start()
    try:
        acme_key = (await store.create("acme", name="acme"))[1]
    finally:
        await store.stop(0)
    gateway = GatewayServiceStub(mesh.client("gateway"))
    request = gw.SubmitTaskRequest(
        request_id="shop-1", text="add eggs to my shopping list", scope=Scope(user_id="ana", session_id="s1")
    )
    submitted = await gateway.SubmitTask(request, metadata=(("x-api-key", acme_key),))
    task_id = submitted.task.task_id
    events = [
        e
        async for e in gateway.WatchTask(
            gw.WatchTaskRequest(task_id=task_id), metadata=(("x-api-key", acme_key),)
        )
    ]
    done = await gateway.GetTask(gw.GetTaskRequest(task_id=task_id), metadata=(("x-api-key", acme_key),))
    assert done.task.state == TaskState.TASK_STATE_COMPLETED, done.task
    # The planner's call to the tool service, and the tool's to memory, acted for acme's ana.
    shown = await ToolServiceStub(mesh.bare_client("tool")).InvokeTool(
        list_show(), metadata=as_(minter.mint("acme", "ana"))
    )
    assert "eggs" in shown.display
    # The credential the task ran with names its tenant, user and itself, and no event carries it.
    engine = create_engine(f"sqlite:///{settings.data_dir / 'tasks.db'}")
    try:
        with engine.connect() as conn:
            credential = conn.execute(
                select(schema.tasks.c.credential).where(schema.tasks.c.task_id == task_id)
            ).scalar_one()
    finally:
        engine.dispose()
    claims = jwt.decode(credential, options={"verify_signature": False})
    assert (claims["tenant"], claims["sub"], claims["task"]) == ("acme", "ana", task_id)
    assert all(credential not in e.SerializeToString().decode("latin-1") for e in events)


async def test_hivemesh_token_lets_grpcurl_call_an_internal_service(
    mesh: RunningMesh, settings: Settings, minter: Minter
) -> None:
    await remember_the_pin(mesh, minter)
    env = {"HIVEMESH_DATA_DIR": str(settings.data_dir), "PATH": "/usr/bin:/bin"}
    command = [str(ROOT / ".venv" / "bin" / "hivemesh"), "token", "--tenant", "acme", "--user", "ana"]
    minted = await asyncio.to_thread(
        subprocess.run,
        [*command, "--ttl", "2m"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    printed = minted.stdout.strip()
    name, _, value = printed.partition(": ")
    assert name == CREDENTIAL_HEADER
    assert value

    async def recall(*headers: str) -> subprocess.CompletedProcess[str]:
        body = json.dumps({"scope": {"tenant_id": "acme", "user_id": "ana"}, "text": "bank pin"})
        return await asyncio.to_thread(
            subprocess.run,
            [
                str(ROOT / ".venv" / "bin" / "grpcurl"),
                "-plaintext",
                *headers,
                "-d",
                body,
                mesh.address("memory"),
                "hivemesh.memory.v1.MemoryService/Recall",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    allowed = await recall("-H", printed)
    assert allowed.returncode == 0, allowed.stderr
    assert "4921" in allowed.stdout
    refused = await recall()
    assert refused.returncode != 0
    assert "Unauthenticated" in refused.stderr


def test_what_this_process_signs_is_taken_without_a_second_signature_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that signs a credential and also checks it (``hivemesh up``) does not verify its
    own signature again, but only for a key its key set holds: a key missing from the JWKS gets no
    shortcut, and its credentials are refused here as everywhere."""
    from hivemesh.mesh.credentials import Verifier, ensure_keys  # noqa: PLC0415

    keys = ensure_keys(tmp_path / "mesh")
    verifier = Verifier(keys.jwks)
    minter = Minter(keys.signing_key, verifier=verifier)
    token = minter.mint("acme", "ana", "t-1")

    def no_check(*args: object, **kwargs: object) -> object:
        raise AssertionError("the signature was checked again")

    monkeypatch.setattr(jwt, "decode", no_check)
    claims = verifier.verify(token)
    assert (claims.tenant_id, claims.user_id, claims.task_id) == ("acme", "ana", "t-1")
    monkeypatch.undo()

    stranger = tmp_path / "stranger"
    stranger.mkdir()
    write_key_pair(ec.generate_private_key(ec.SECP256R1()), stranger / "key.pem", stranger / "jwks.json")
    foreign = Minter(stranger / "key.pem", verifier=verifier).mint("acme", "ana", "t-2")
    with pytest.raises(Exception, match="does not know") as refused:
        verifier.verify(foreign)
    assert getattr(refused.value, "reason", "") == "CREDENTIAL_UNKNOWN_KEY"
