"""CountMemory: what each layer holds for a tenant or one of its users, over both adapter sets;
numbers only, confined to the credential's tenant, expired items left out."""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2, struct_pb2

from hivemesh.common.v1.content_pb2 import ROLE_ASSISTANT, ROLE_USER
from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.memory.v1 import memory_service_pb2 as pb
from tests.memory.harness import MemoryUnderTest, scope
from tests.support import mesh_minter, rpc_error


def acting_for(memory: MemoryUnderTest, tenant: str, user: str = "") -> tuple[tuple[str, str], ...]:
    """A mesh credential for ``tenant`` (and ``user``; none: every user of the tenant)."""
    return (("x-hivemesh-credential", mesh_minter(memory.settings).mint(tenant, user)),)


async def count(memory: MemoryUnderTest, tenant: str, user: str = "") -> pb.MemoryUsage:
    response = await memory.stub.CountMemory(
        pb.CountMemoryRequest(scope=Scope(tenant_id=tenant, user_id=user)),
        metadata=acting_for(memory, tenant, user),
    )
    return response.usage


async def fill(memory: MemoryUnderTest) -> None:
    """Tenant A: ana has two turns in one session, two memories and a record; bob has one turn
    and one memory. Tenant B: one turn of ana's (same ids, another tenant)."""
    stub = memory.stub
    ana, bob = scope("tenant-a", "ana", "s1"), scope("tenant-a", "bob", "s2")
    turns = [pb.Turn(role=ROLE_USER, text="hello"), pb.Turn(role=ROLE_ASSISTANT, text="hi")]
    await stub.AppendTurns(pb.AppendTurnsRequest(scope=ana, turns=turns))
    await stub.AppendTurns(pb.AppendTurnsRequest(scope=bob, turns=turns[:1]))
    await stub.Remember(pb.RememberRequest(scope=ana, text="ana's cat is called Miso"))
    await stub.Remember(pb.RememberRequest(scope=ana, text="ana flies to Lisbon on the ninth of May"))
    await stub.Remember(pb.RememberRequest(scope=bob, text="bob prefers green tea over coffee"))
    value = struct_pb2.Struct()
    value.update({"items": ["milk"]})
    await stub.PutRecord(pb.PutRecordRequest(scope=ana, kind="list", key="shopping", value=value))
    await stub.AppendTurns(pb.AppendTurnsRequest(scope=scope("tenant-b", "ana", "s1"), turns=turns))


async def test_each_layer_is_counted_for_the_tenant_and_for_one_user(memory: MemoryUnderTest) -> None:
    await fill(memory)
    tenant = await count(memory, "tenant-a")
    assert (tenant.short_term.items, tenant.sessions) == (3, 2)
    assert tenant.long_term.items == 3
    assert tenant.structured.items == 1
    ana = await count(memory, "tenant-a", "ana")
    assert (ana.short_term.items, ana.sessions, ana.long_term.items, ana.structured.items) == (2, 1, 2, 1)
    other = await count(memory, "tenant-b")
    assert (other.short_term.items, other.sessions, other.long_term.items, other.structured.items) == (
        2,
        1,
        0,
        0,
    )
    nobody = await count(memory, "tenant-c")
    assert (nobody.short_term.items, nobody.sessions, nobody.long_term.items, nobody.structured.items) == (
        0,
        0,
        0,
        0,
    )
    # Each layer names the store behind it in this deployment.
    stores = (tenant.short_term.store, tenant.long_term.store, tenant.structured.store)
    assert stores in {("sqlite", "qdrant-edge", "sqlite"), ("redis", "qdrant", "postgresql")}


async def test_expired_items_are_not_counted(memory: MemoryUnderTest) -> None:
    stub = memory.stub
    ana = scope("tenant-a", "ana", "s1")
    await stub.Remember(
        pb.RememberRequest(
            scope=ana, text="the door code is temporary", ttl=duration_pb2.Duration(seconds=60)
        )
    )
    value = struct_pb2.Struct()
    value.update({"items": []})
    await stub.PutRecord(
        pb.PutRecordRequest(
            scope=ana, kind="list", key="soon-gone", value=value, ttl=duration_pb2.Duration(seconds=60)
        )
    )
    before = await count(memory, "tenant-a")
    assert (before.long_term.items, before.structured.items) == (1, 1)
    memory.clock.now += 61
    after = await count(memory, "tenant-a")
    assert (after.long_term.items, after.structured.items) == (0, 0)


async def test_another_tenants_counts_are_refused(memory: MemoryUnderTest) -> None:
    failed = await rpc_error(
        memory.stub.CountMemory(
            pb.CountMemoryRequest(scope=Scope(tenant_id="tenant-b")), metadata=acting_for(memory, "tenant-a")
        )
    )
    assert failed.code == grpc.StatusCode.PERMISSION_DENIED
    assert failed.reason == "SCOPE_MISMATCH"


async def test_a_session_is_invalid_naming_the_field_and_no_scope_means_the_credentials(
    memory: MemoryUnderTest,
) -> None:
    session = await rpc_error(
        memory.stub.CountMemory(
            pb.CountMemoryRequest(scope=scope("tenant-a", "ana", "s1")),
            metadata=acting_for(memory, "tenant-a", "ana"),
        )
    )
    assert session.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in session.field_violations] == ["scope.session_id"]
    # No scope: the credential's tenant is counted (the scope a server sees comes from it).
    await fill(memory)
    implied = await memory.stub.CountMemory(pb.CountMemoryRequest(), metadata=acting_for(memory, "tenant-a"))
    assert (implied.usage.short_term.items, implied.usage.long_term.items) == (3, 3)
