"""What the fuzz test of every RPC (``test_fuzz_rpcs``) found, one test each, against a real server."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path

import grpc
import pytest

from hivemesh.language.v1 import language_service_pb2 as lang
from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceStub
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer, ServiceApp
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1 import tool_service_pb2_grpc as tool_grpc
from tests.mesh.fixtures import ForwardingTool
from tests.security.errors_harness import serve
from tests.support import make_settings, rpc_error, start_mesh


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the services and asyncio logged at ERROR: an unexpected failure inside."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.split(".")[0] in ("hivemesh", "asyncio")
    ]


@pytest.mark.parametrize("token", ["é", "page\u00a0two", "😀😀😀😀"])
async def test_a_page_token_that_is_not_ascii_names_the_field(settings: Settings, token: str) -> None:
    """ListTools read its page token as base64 and let the ValueError of a non-ASCII one through
    (INTERNAL)."""
    async with serve(settings, ["tool"], "grpc") as served:
        stub = tool_grpc.ToolServiceStub(served.channel("tool"))
        status = await rpc_error(stub.ListTools(tool.ListToolsRequest(page_token=token)))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.field_violations == (("page_token", "is not a token this service returned"),)


async def test_a_stream_its_client_stops_reading_ends_quietly_and_is_counted(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A server stream whose client went away is closed by asyncio in a task of its own, another
    context than the call's. Resetting the call's context variables there raised: an "unexpected
    error" with a traceback in the log, and the call was never counted."""
    caplog.set_level(logging.INFO)
    metrics = Metrics()
    channels = ChannelFactory(settings)
    forwarding = ForwardingTool(channels)  # type: ignore[abstract]  # a partial servicer
    server = MeshServer(
        ServiceApp("tool", lambda s: tool_grpc.add_ToolServiceServicer_to_server(forwarding, s)),
        settings.server,
        0,
        metrics,
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        # "endless" sends without ever waiting: the server is always between two messages when
        # the client leaves, so the stream is closed from outside the call.
        call = tool_grpc.ToolServiceStub(channel).InvokeToolStream(
            tool.InvokeToolStreamRequest(tool_name="endless")
        )
        await call.read()
        call.cancel()
        await asyncio.wait_for(forwarding.cancelled.wait(), 5)
        gc.collect()  # so that a task whose exception nobody retrieved is reported now
        await asyncio.sleep(0.05)
        labels = {
            "grpc_type": "server_stream",
            "grpc_service": "hivemesh.tool.v1.ToolService",
            "grpc_method": "InvokeToolStream",
            "grpc_code": "CANCELLED",
            "release": metrics.release,
        }
        assert metrics.registry.get_sample_value("grpc_server_handled_total", labels) == 1
        assert failures(caplog) == []
    finally:
        await channel.close(None)
        await server.stop(0.5)
        await channels.close()


async def test_embed_answers_too_many_texts_for_one_reply_with_invalid_argument(tmp_path: Path) -> None:
    """At the contract's 2,048 texts the reply would pass the 4 MiB message limit: the caller is
    told how many to send, instead of a RESOURCE_EXHAUSTED it would retry in vain."""
    mesh = await start_mesh(make_settings(tmp_path / "data"), services=["language"])
    try:
        stub = LanguageServiceStub(mesh.client("language"))
        status = await rpc_error(stub.Embed(lang.EmbedRequest(texts=["a text"] * 2048)))
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [field for field, _ in status.field_violations] == ["texts"]
        most = int(status.message.split("send at most ")[1].split()[0])
        answered = await stub.Embed(lang.EmbedRequest(texts=["a text"] * most))
        assert len(answered.embeddings) == most
    finally:
        await mesh.stop()
