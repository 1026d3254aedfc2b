"""A2A against a real mesh, with the a2a-sdk's own client: JSON-RPC and HTTP+JSON."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import cast

import httpx
import pytest
from a2a.client import A2ACardResolver, Client
from a2a.types import a2a_pb2 as a2a
from a2a.utils.constants import TransportProtocol
from a2a.utils.errors import InvalidRequestError, TaskNotFoundError, UnsupportedOperationError

from hivemesh.client import HivemeshClient
from hivemesh.tool.v1.tool_service_pb2 import ToolSpec
from tests.a2a.harness import (
    Ports,
    a2a_client,
    resume_from,
    sequence,
    serve_a2a,
    text_message,
)
from tests.gateway.harness import Issuer
from tests.support import RunningMesh, keys_for, make_settings, start_mesh

QUESTION = "what is 12 * (3 + 4)?"
BINDINGS = [TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON, TransportProtocol.GRPC]


def answer_of(responses: list[a2a.StreamResponse]) -> str:
    """The answer artifact, built from its updates as an A2A client does."""
    text = ""
    for response in responses:
        if response.HasField("artifact_update"):
            update = response.artifact_update
            chunk = "".join(part.text for part in update.artifact.parts)
            text = text + chunk if update.append else chunk
    return text.strip()


def opened(client: Client, request: a2a.SendMessageRequest) -> AsyncGenerator[a2a.StreamResponse]:
    """The client's stream, as the generator it is, so that it can be closed half way."""
    return cast("AsyncGenerator[a2a.StreamResponse]", client.send_message(request))


async def collect(client: Client, request: a2a.SendMessageRequest) -> list[a2a.StreamResponse]:
    return [response async for response in client.send_message(request)]


async def test_the_agent_card_lists_a_skill_per_tool(mesh: RunningMesh) -> None:
    async with (
        serve_a2a(mesh.address("gateway")) as url,
        httpx.AsyncClient() as http,
    ):
        response = await http.get(f"{url}/.well-known/agent-card.json")
        assert response.status_code == 200
        card = response.json()
        assert card["capabilities"]["streaming"] is True
        bindings = {i["protocolBinding"]: i["url"] for i in card["supportedInterfaces"]}
        assert bindings.keys() == {"JSONRPC", "HTTP+JSON", "GRPC"}
        assert (bindings["JSONRPC"], bindings["HTTP+JSON"]) == (f"{url}/", f"{url}/rest")
    # The SDK's client reads the same card: the general skill, then the catalogue's tools by name.
    tools = sorted(spec.name for spec in await mesh_tools(mesh))
    async with serve_a2a(mesh.address("gateway")) as url, httpx.AsyncClient() as http:
        resolved = await A2ACardResolver(http, url).get_agent_card()
    assert [skill.id for skill in resolved.skills] == ["ask", *(f"tool:{name}" for name in tools)]
    assert {"tool:calculator", "tool:convert_units", "tool:list_add"} <= {s.id for s in resolved.skills}
    assert resolved.capabilities.extended_agent_card


async def test_with_credentials_required_the_tools_are_on_the_extended_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEMESH_AUTH", "required")
    settings = make_settings(tmp_path / "data")
    (acme,) = await keys_for(settings, "acme")
    mesh = await start_mesh(settings)
    try:
        async with serve_a2a(mesh.address("gateway")) as url, httpx.AsyncClient() as http:
            async with a2a_client(url, token=acme, binding=TransportProtocol.JSONRPC) as client:
                # The public card, read without credentials, names the general skill alone...
                public = await A2ACardResolver(http, url).get_agent_card()
                assert [skill.id for skill in public.skills] == ["ask"]
                assert public.capabilities.extended_agent_card
                # ... the extended one, read with the caller's key, the live catalogue.
                extended = await client.get_extended_agent_card(a2a.GetExtendedAgentCardRequest())
                assert {"ask", "tool:calculator", "tool:list_add"} <= {s.id for s in extended.skills}
            async with a2a_client(url, binding=TransportProtocol.JSONRPC) as anonymous:
                with pytest.raises(InvalidRequestError) as refused:
                    await anonymous.get_extended_agent_card(a2a.GetExtendedAgentCardRequest())
                assert refused.value.data is not None
                assert refused.value.data["status"] == "UNAUTHENTICATED"
    finally:
        await mesh.stop()


async def mesh_tools(mesh: RunningMesh) -> list[ToolSpec]:
    async with HivemeshClient(mesh.address("gateway")) as client:
        return await client.list_tools()


@pytest.mark.parametrize("binding", BINDINGS)
async def test_message_send_returns_the_finished_task(mesh: RunningMesh, binding: str) -> None:
    async with (
        serve_a2a(mesh.address("gateway")) as url,
        a2a_client(url, streaming=False, binding=binding) as client,
    ):
        [response] = await collect(client, text_message(QUESTION))
        task = response.task
        assert task.status.state == a2a.TASK_STATE_COMPLETED
        assert task.status.message.parts[0].text == "84"
        assert [part.text for part in task.artifacts[0].parts] == ["84"]
        got = await client.get_task(a2a.GetTaskRequest(id=task.id))
        assert got.status.state == a2a.TASK_STATE_COMPLETED
        assert got.history[0].parts[0].text == QUESTION


async def test_the_stream_carries_every_event_of_the_log_once(mesh: RunningMesh) -> None:
    async with serve_a2a(mesh.address("gateway")) as url, a2a_client(url) as client:
        responses = await collect(client, text_message(QUESTION))
    assert responses[0].task.status.state == a2a.TASK_STATE_SUBMITTED
    sequences = [sequence(r) for r in responses]
    assert sequences == list(range(1, len(responses) + 1))
    assert responses[-1].status_update.status.state == a2a.TASK_STATE_COMPLETED
    assert answer_of(responses) == "84"


async def test_input_required_is_continued_by_a_message_on_the_same_task(mesh: RunningMesh) -> None:
    async with serve_a2a(mesh.address("gateway")) as url, a2a_client(url) as client:
        asked = await collect(client, text_message("convert 10 miles"))
        task = asked[0].task
        status = asked[-1].status_update.status
        assert status.state == a2a.TASK_STATE_INPUT_REQUIRED
        assert "unit" in status.message.parts[0].text
        answered = await collect(client, text_message("km", task_id=task.id, context_id=task.context_id))
        assert answered[0].task.id == task.id
        assert answered[-1].status_update.status.state == a2a.TASK_STATE_COMPLETED
        assert "16.09" in answer_of(answered)
        # The answer continues the same log: the snapshot starts after the question.
        assert sequence(answered[0]) > sequence(asked[-1])
        # A second answer to a task no longer waiting for one is refused.
        with pytest.raises(UnsupportedOperationError):
            await collect(client, text_message("miles", task_id=task.id))


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_stream_cut_half_way_resumes_across_restarts(
    tmp_path: Path, binding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client reads three events, drops the stream, and both the A2A app and the whole mesh
    restart; resubscribing with the last sequence it saw yields the rest of the log exactly."""
    monkeypatch.setenv("HIVEMESH_VISIBILITY_TIMEOUT", "1")  # the task queue's own config reads it
    settings = make_settings(tmp_path / "data")
    mesh = await start_mesh(settings)
    try:
        ports = Ports()
        first: list[a2a.StreamResponse] = []
        async with (
            serve_a2a(mesh.address("gateway"), ports=ports) as url,
            a2a_client(url, binding=binding) as client,
            contextlib.aclosing(opened(client, text_message(QUESTION))) as stream,
        ):
            async for response in stream:
                first.append(response)
                if len(first) == 3:
                    break
        task_id = first[0].task.id
        await mesh.stop()
        mesh = await start_mesh(settings)
        async with (
            serve_a2a(mesh.address("gateway"), ports=ports) as url,
            a2a_client(url, binding=binding) as client,
        ):
            request = a2a.SubscribeToTaskRequest(id=task_id)
            rest = [r async for r in client.subscribe(request, context=resume_from(sequence(first[-1])))]
            # Resuming from the very end yields nothing more; without a cursor an ended task is refused.
            done = [r async for r in client.subscribe(request, context=resume_from(sequence(rest[-1])))]
            assert done == []
            with pytest.raises(UnsupportedOperationError):
                await anext(client.subscribe(request))
        sequences = [sequence(r) for r in first + rest]
        assert sequences == list(range(1, len(sequences) + 1))
        assert rest[-1].status_update.status.state == a2a.TASK_STATE_COMPLETED
        assert answer_of(first + rest) == "84"
    finally:
        await mesh.stop()


async def test_a_subscriber_without_a_cursor_gets_the_task_then_what_follows(mesh: RunningMesh) -> None:
    async with serve_a2a(mesh.address("gateway")) as url, a2a_client(url) as client:
        asked = await collect(client, text_message("convert 3 kg"))
        task_id = asked[0].task.id
        # The task waits for an answer: subscribing shows it, and the stream ends there.
        [snapshot] = [r async for r in client.subscribe(a2a.SubscribeToTaskRequest(id=task_id))]
        assert snapshot.task.status.state == a2a.TASK_STATE_INPUT_REQUIRED
        assert sequence(snapshot) == sequence(asked[-1])
        canceled = await client.cancel_task(a2a.CancelTaskRequest(id=task_id))
        assert canceled.status.state == a2a.TASK_STATE_CANCELED
        rest = [
            r
            async for r in client.subscribe(
                a2a.SubscribeToTaskRequest(id=task_id), context=resume_from(sequence(snapshot))
            )
        ]
        assert [r.status_update.status.state for r in rest] == [a2a.TASK_STATE_CANCELED]


async def test_credentials_pass_through_and_tenants_stay_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer = Issuer.create(tmp_path)
    monkeypatch.setenv("HIVEMESH_AUTH", "required")
    monkeypatch.setenv("HIVEMESH_JWT_JWKS", str(issuer.jwks_path))
    monkeypatch.setenv("HIVEMESH_JWT_ISSUER", "test-idp")
    settings = make_settings(tmp_path / "data")
    acme, globex = await keys_for(settings, "acme", "globex")
    mesh = await start_mesh(settings)
    try:
        async with serve_a2a(mesh.address("gateway")) as url:
            async with a2a_client(url, token=acme, streaming=False) as client:
                [response] = await collect(client, text_message(QUESTION))
                task = response.task
                assert task.status.state == a2a.TASK_STATE_COMPLETED
            for other in (globex, issuer.token("globex")):
                async with a2a_client(url, token=other) as client:
                    with pytest.raises(TaskNotFoundError):
                        await client.get_task(a2a.GetTaskRequest(id=task.id))
                    with pytest.raises(TaskNotFoundError):
                        await anext(
                            client.subscribe(a2a.SubscribeToTaskRequest(id=task.id), context=resume_from(0))
                        )
            async with a2a_client(url, token=issuer.token("acme")) as client:
                assert (await client.get_task(a2a.GetTaskRequest(id=task.id))).id == task.id
            async with a2a_client(url) as client:
                with pytest.raises(InvalidRequestError) as missing:
                    await client.get_task(a2a.GetTaskRequest(id=task.id))
                assert missing.value.data is not None
                assert missing.value.data["status"] == "UNAUTHENTICATED"
    finally:
        await mesh.stop()
