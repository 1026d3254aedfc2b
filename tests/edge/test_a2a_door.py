"""The edge serves the A2A door beside the others: the SDK's own client finds the Agent Card under
/a2a and runs a task through it, against a real mesh."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import grpc
import httpx
import pytest
from a2a.types import a2a_pb2 as a2a
from a2a.types import a2a_pb2_grpc
from a2a.utils.constants import TransportProtocol

from hivemesh.edge.config import EdgeConfig
from hivemesh.mesh import tls as transport
from hivemesh.mesh.certs import make_certificates
from hivemesh.mesh.config import ConfigError, Settings, TlsConfig
from tests.a2a.harness import a2a_client, text_message
from tests.edge.conftest import ServedEdge, serve_edge
from tests.support import make_settings


async def test_the_edge_serves_a2a_with_a_card_naming_its_own_address(edge: ServedEdge) -> None:
    async with httpx.AsyncClient() as http:
        card = (await http.get(f"{edge.url}/a2a/.well-known/agent-card.json")).json()
    # Bound to loopback, the card names localhost (the only host names the edge answers there).
    port = edge.url.rsplit(":", 1)[1]
    assert {i["url"] for i in card["supportedInterfaces"]} == {
        f"http://localhost:{port}/a2a/",
        f"http://localhost:{port}/a2a/rest",
    }
    # Its skills: the general one, then the live tool catalogue (the gateway's ListTools).
    assert card["skills"][0]["id"] == "ask"
    assert {"tool:calculator", "tool:convert_units"} <= {skill["id"] for skill in card["skills"]}
    async with a2a_client(f"{edge.url}/a2a", streaming=False, binding=TransportProtocol.JSONRPC) as client:
        async for response in client.send_message(text_message("what is 12 * (3 + 4)?")):
            task = response.task
    assert task.status.state == a2a.TASK_STATE_COMPLETED
    assert task.status.message.parts[0].text == "84"


async def test_the_edge_serves_the_a2a_grpc_binding_on_its_own_port(settings: Settings) -> None:
    config = EdgeConfig(port=0, gateway_patience_s=0.5, a2a_grpc_port=0)
    async with serve_edge(settings, config) as edge:
        async with httpx.AsyncClient() as http:
            card = (await http.get(f"{edge.url}/a2a/.well-known/agent-card.json")).json()
        grpc_url = {i["protocolBinding"]: i["url"] for i in card["supportedInterfaces"]}["GRPC"]
        host, port = grpc_url.rsplit(":", 1)
        assert host == "localhost"
        assert int(port) not in (0, int(edge.url.rsplit(":", 1)[1]))
        # The SDK's client picks the gRPC binding from the card and runs a task over it.
        async with a2a_client(f"{edge.url}/a2a", streaming=True, binding=TransportProtocol.GRPC) as client:
            events = [event async for event in client.send_message(text_message("what is 12 * (3 + 4)?"))]
            extended = await client.get_extended_agent_card(a2a.GetExtendedAgentCardRequest())
    assert events[-1].status_update.status.state == a2a.TASK_STATE_COMPLETED
    assert "tool:calculator" in {skill.id for skill in extended.skills}


def test_the_grpc_binding_is_off_unless_configured() -> None:
    assert EdgeConfig.from_env({}).a2a_grpc_port is None
    config = EdgeConfig.from_env(
        {"HIVEMESH_EDGE_A2A_GRPC_PORT": "50070", "HIVEMESH_EDGE_A2A_GRPC_URL": "agents.example.com:443"}
    )
    assert (config.a2a_grpc_port, config.a2a_grpc_url) == (50070, "agents.example.com:443")
    with pytest.raises(ConfigError, match="HIVEMESH_EDGE_A2A_GRPC_URL must be host:port"):
        EdgeConfig.from_env({"HIVEMESH_EDGE_A2A_GRPC_URL": "https://agents.example.com"})
    with pytest.raises(ConfigError, match="HIVEMESH_EDGE_A2A_GRPC_PORT must be a port number"):
        EdgeConfig.from_env({"HIVEMESH_EDGE_A2A_GRPC_PORT": "grpc"})


async def test_with_tls_the_grpc_binding_is_served_and_the_gateway_reached_over_tls(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    cert, key = certs.services["gateway"]
    settings = replace(make_settings(tmp_path / "data"), tls=TlsConfig(ca=certs.ca, cert=cert, key=key))
    config = EdgeConfig(port=0, gateway_patience_s=0.5, a2a_grpc_port=0)
    async with serve_edge(settings, config) as edge, httpx.AsyncClient() as http:
        card = (await http.get(f"{edge.url}/a2a/.well-known/agent-card.json")).json()
        grpc_url = {i["protocolBinding"]: i["url"] for i in card["supportedInterfaces"]}["GRPC"]
        # A client with the CA only, as outside the mesh.
        client_tls = TlsConfig(ca=certs.ca)
        async with grpc.aio.secure_channel(
            grpc_url,
            transport.channel_credentials(client_tls, require_identity=False),
            options=transport.channel_options(client_tls),
        ) as channel:
            response = await a2a_pb2_grpc.A2AServiceStub(channel).SendMessage(  # type: ignore[no-untyped-call]
                text_message("what is 12 * (3 + 4)?"), timeout=60
            )
        assert response.task.status.state == a2a.TASK_STATE_COMPLETED
        assert response.task.status.message.parts[0].text == "84"
        async with grpc.aio.insecure_channel(grpc_url) as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await a2a_pb2_grpc.A2AServiceStub(plaintext).GetTask(  # type: ignore[no-untyped-call]
                    a2a.GetTaskRequest(id=response.task.id), timeout=5
                )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
