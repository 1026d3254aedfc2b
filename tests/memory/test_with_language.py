"""Remember and Recall with embeddings from the real language service's Embed RPC."""

from __future__ import annotations

import pytest

from hivemesh.memory.v1 import memory_service_pb2 as pb
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.config import Settings
from tests.memory.harness import scope
from tests.support import start_mesh


async def test_recall_through_the_language_service(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEMESH_MEMORY_EMBEDDER", "language")
    mesh = await start_mesh(settings, services=["memory", "language"])
    try:
        stub = MemoryServiceStub(mesh.client("memory"))
        fact = await stub.Remember(
            pb.RememberRequest(scope=scope(session="monday"), text="remember that my sister's name is Ana")
        )
        await stub.Remember(
            pb.RememberRequest(scope=scope(), text="I usually drink green tea in the morning")
        )
        await stub.Remember(pb.RememberRequest(scope=scope(), text="the car is parked on level three"))
        found = await stub.Recall(
            pb.RecallRequest(scope=scope(session="friday"), text="what's my sister's name?")
        )
        assert found.hits[0].memory.memory_id == fact.memory.memory_id
    finally:
        await mesh.stop()
