"""The edge serves the A2A door beside the others: the SDK's own client finds the Agent Card under
/a2a and runs a task through it, against a real mesh."""

from __future__ import annotations

import httpx
from a2a.types import a2a_pb2 as a2a
from a2a.utils.constants import TransportProtocol

from tests.a2a.harness import a2a_client, text_message
from tests.edge.conftest import ServedEdge


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
