"""The A2A application served by uvicorn on a free port, and the SDK's client for it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import uvicorn
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.client.client import ClientCallContext
from a2a.types import a2a_pb2 as a2a
from a2a.utils.constants import TransportProtocol
from a2a.utils.push_url_validator import validate_push_notification_url
from starlette.types import ASGIApp

from hivemesh.a2a.app import A2ADoor, add_a2a_servicer
from hivemesh.a2a.handler import CURSOR_HEADER
from hivemesh.a2a.mapping import sequence_of
from hivemesh.a2a.push import RetryPolicy
from hivemesh.a2a.push_store import PushStore
from hivemesh.a2a.skills import SkillSource
from hivemesh.mesh.sql import make_engine, sqlite_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Ports:
    """Where one A2A front door listens: HTTP (JSON-RPC and HTTP+JSON) and gRPC."""

    http: int = field(default_factory=free_port)
    grpc: int = field(default_factory=free_port)


@contextlib.asynccontextmanager
async def serve_asgi(app: ASGIApp, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on ``port`` (a free one when None); yields its URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


# Webhooks in tests listen on loopback, and are retried quickly.
FAST_RETRY = RetryPolicy(max_attempts=5, initial_backoff_s=0.05, max_backoff_s=0.2)


@contextlib.asynccontextmanager
async def serve_a2a(
    gateway_address: str,
    *,
    ports: Ports | None = None,
    skills: SkillSource | None = None,
    any_webhook: bool = True,
    push_db: Path | None = None,
) -> AsyncIterator[str]:
    """Serve the A2A door (HTTP and its gRPC binding) for the gateway at ``gateway_address``;
    yields the app's URL (its card names the gRPC address). Pass the ``ports`` and the ``push_db``
    (the SQLite file of its push registrations) of a stopped one to serve it again as it was."""
    ports = ports or Ports()
    url = f"http://127.0.0.1:{ports.http}"
    grpc_address = f"127.0.0.1:{ports.grpc}"
    with tempfile.TemporaryDirectory() as scratch:
        door = A2ADoor(
            gateway_address,
            url,
            push_store=PushStore(make_engine(sqlite_url(push_db or Path(scratch) / "a2a.db"))),
            skills=skills,
            grpc_url=grpc_address,
            push_url_validator=None if any_webhook else validate_push_notification_url,
            push_retry=FAST_RETRY,
        )
        await door.start()
        grpc_server = grpc.aio.server()
        add_a2a_servicer(door.grpc_servicer(), grpc_server)
        grpc_server.add_insecure_port(grpc_address)
        await grpc_server.start()
        try:
            async with serve_asgi(door.app, ports.http) as served:
                assert served == url
                yield url
        finally:
            await grpc_server.stop(0)
            await door.close()


@contextlib.asynccontextmanager
async def a2a_client(
    url: str,
    *,
    token: str = "",
    streaming: bool = True,
    binding: str = TransportProtocol.JSONRPC,
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        factory = ClientFactory(
            ClientConfig(
                streaming=streaming,
                httpx_client=http,
                supported_protocol_bindings=[binding],
                grpc_channel_factory=grpc.aio.insecure_channel,
            )
        )
        client = await factory.create_from_url(url)
        try:
            yield client
        finally:
            await client.close()


def text_message(text: str, *, task_id: str = "", context_id: str = "") -> a2a.SendMessageRequest:
    import uuid  # noqa: PLC0415

    return a2a.SendMessageRequest(
        message=a2a.Message(
            message_id=uuid.uuid4().hex,
            role=a2a.ROLE_USER,
            parts=[a2a.Part(text=text)],
            task_id=task_id,
            context_id=context_id,
        )
    )


def resume_from(sequence: int) -> ClientCallContext:
    """A call context that resumes a task's stream after ``sequence``."""
    return ClientCallContext(service_parameters={CURSOR_HEADER: str(sequence)})


def sequence(response: a2a.StreamResponse) -> int:
    kind = response.WhichOneof("payload")
    assert kind in ("task", "status_update", "artifact_update"), kind
    return sequence_of(getattr(response, kind))
