"""The intents an MCP server's tools serve, declared in HIVEMESH_MCP_SERVERS: read, or refused at
start-up with a message naming the server and the tool."""

from __future__ import annotations

from typing import Any

import pytest

from hivemesh.mesh.config import ConfigError
from hivemesh.tool.mcpbridge.config import parse_server
from hivemesh.tool.model import Fill, Serves, SlotPart


def server(intents: Any) -> dict[str, Any]:
    return {"command": "true", "intents": intents}


def test_declared_intents_are_read() -> None:
    config = parse_server(
        "units",
        server(
            {
                "convert": [
                    {
                        "intent": "unit_conversion",
                        "arguments": {
                            "amount": {"slot": "quantity", "part": "quantity_value"},
                            "to": {"slot": "to_unit", "question": "Into what?", "joiner": "to"},
                        },
                        "reply": "{amount} is {converted}",
                    }
                ]
            }
        ),
    )
    assert config.intents == {
        "convert": (
            Serves(
                "unit_conversion",
                {
                    "amount": Fill("quantity", part=SlotPart.QUANTITY_VALUE),
                    "to": Fill("to_unit", "Into what?", joiner="to"),
                },
                "{amount} is {converted}",
            ),
        )
    }
    assert parse_server("plain", {"command": "true"}).intents == {}


@pytest.mark.parametrize(
    ("intents", "message"),
    [
        ([], "'intents' must map tool names"),
        ({"add": {"intent": "sum"}}, "intents of 'add' must be a list"),
        ({"add": [{"arguments": {}}]}, "needs 'intent'"),
        ({"add": [{"intent": "sum", "arguments": {"a": "number"}}]}, "argument 'a' must be an object"),
        ({"add": [{"intent": "sum", "arguments": {"a": {"slots": "number"}}}]}, "unknown keys"),
        ({"add": [{"intent": "sum", "arguments": {"a": {"part": "half"}}}]}, "'part' is one of"),
    ],
)
def test_a_bad_declaration_is_refused_at_start_up(intents: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        parse_server("demo", server(intents))
    assert "server 'demo'" in str(refused.value)
