"""Embedding through the language service: when it is down, text calls are UNAVAILABLE and
recall by vector still works."""

from __future__ import annotations

import socket
from pathlib import Path

import grpc

from hivemesh.memory.config import EmbedderKind, MemoryConfig
from hivemesh.memory.v1 import memory_service_pb2 as pb
from tests.memory.harness import memory_service, scope
from tests.support import rpc_error


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_language_service_down_is_embedder_unavailable(tmp_path: Path) -> None:
    config = MemoryConfig(embedder=EmbedderKind.LANGUAGE, dimensions=8, sweep_interval_s=3600)
    env = {"HIVEMESH_LANGUAGE_ADDR": f"127.0.0.1:{closed_port()}", "HIVEMESH_CALL_TIMEOUT": "2s"}
    async with memory_service(tmp_path / "data", config=config, env=env) as memory:
        status = await rpc_error(memory.stub.Remember(pb.RememberRequest(scope=scope(), text="hello")))
        assert status.code == grpc.StatusCode.UNAVAILABLE
        assert status.reason == "EMBEDDER_UNAVAILABLE"
        by_text = await rpc_error(memory.stub.Recall(pb.RecallRequest(scope=scope(), text="hello")))
        assert by_text.reason == "EMBEDDER_UNAVAILABLE"
        by_vector = await memory.stub.Recall(
            pb.RecallRequest(scope=scope(), vector=pb.QueryVector(values=[0.5] * 8))
        )
        assert list(by_vector.hits) == []
