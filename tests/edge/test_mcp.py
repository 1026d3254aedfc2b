"""The MCP door, with the mcp package's own clients (streamable HTTP and stdio), against a real mesh."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from hivemesh.mesh.config import Settings
from tests.edge.conftest import ServedEdge, serve_edge
from tests.support import keys_for

ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def mcp_session(edge: ServedEdge, **headers: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=60)) as http,
        streamable_http_client(f"{edge.url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_tools_are_listed_with_their_schemas(edge: ServedEdge) -> None:
    async with mcp_session(edge) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
    assert {"ask_agent", "calculator", "list_add", "list_show", "convert_units"} <= set(tools)
    calculator = tools["calculator"]
    assert calculator.inputSchema["type"] == "object"
    assert "expression" in calculator.inputSchema["properties"]
    assert calculator.annotations is not None
    assert calculator.annotations.readOnlyHint is True
    assert tools["list_add"].annotations is not None
    assert tools["list_add"].annotations.readOnlyHint is False
    assert tools["ask_agent"].inputSchema["required"] == ["text"]


async def test_a_tool_call_goes_through_the_tool_service(edge: ServedEdge) -> None:
    async with mcp_session(edge) as session:
        result = await session.call_tool("calculator", {"expression": "15% of 80"})
        converted = await session.call_tool(
            "convert_units", {"value": 5, "from_unit": "miles", "to_unit": "km"}
        )
    assert not result.isError
    assert text_of(result) == "12"
    assert result.structuredContent is not None
    assert not converted.isError
    assert "8.047" in text_of(converted)


async def test_bad_arguments_are_a_tool_error_not_a_crash(edge: ServedEdge) -> None:
    async with mcp_session(edge) as session:
        wrong_type = await session.call_tool("calculator", {"expression": 42})
        missing = await session.call_tool("calculator", {})
        unknown = await session.call_tool("no_such_tool", {})
        empty_ask = await session.call_tool("ask_agent", {"text": ""})
        # The session still works after the errors.
        fine = await session.call_tool("calculator", {"expression": "2 + 2"})
    assert wrong_type.isError
    assert "INVALID_ARGUMENT" in text_of(wrong_type)
    assert "expression" in text_of(wrong_type)
    assert missing.isError
    assert "INVALID_ARGUMENT" in text_of(missing)
    assert unknown.isError
    assert "NOT_FOUND" in text_of(unknown)
    assert empty_ask.isError
    assert text_of(fine) == "4"


async def test_ask_agent_runs_a_whole_task_and_answers_its_question(edge: ServedEdge) -> None:
    async with mcp_session(edge, **{"X-Hivemesh-User": "ana"}) as session:
        answered = await session.call_tool("ask_agent", {"text": "what is 12 * (3 + 4)?"})
        asked = await session.call_tool("ask_agent", {"text": "how do you spell", "session": "words"})
        assert asked.structuredContent is not None
        assert asked.structuredContent["state"] == "input_required"
        spelled = await session.call_tool(
            "ask_agent", {"text": "cat", "session": "words", "task_id": asked.structuredContent["task_id"]}
        )
    assert not answered.isError
    assert text_of(answered) == "84"
    assert answered.structuredContent is not None
    assert answered.structuredContent["state"] == "completed"
    assert answered.structuredContent["session"] == "mcp"
    assert text_of(spelled) == "C-A-T"
    assert spelled.structuredContent is not None
    assert spelled.structuredContent["task_id"] == asked.structuredContent["task_id"]


async def test_each_tenant_sees_only_its_own_lists(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEMESH_AUTH", "required")
    acme, globex = await keys_for(settings, "acme", "globex")
    async with serve_edge(settings) as edge:
        async with mcp_session(edge, Authorization=f"Bearer {acme}") as session:
            added = await session.call_tool("list_add", {"list": "shopping", "items": ["milk", "eggs"]})
            assert not added.isError, text_of(added)
            mine = await session.call_tool("list_show", {"list": "shopping"})
        async with mcp_session(edge, Authorization=f"Bearer {globex}") as session:
            theirs = await session.call_tool("list_show", {"list": "shopping"})
        async with mcp_session(edge) as session:
            with pytest.raises(McpError) as refused:
                await session.list_tools()
            anonymous = await session.call_tool("list_show", {"list": "shopping"})
    assert mine.structuredContent is not None
    assert mine.structuredContent["items"] == ["milk", "eggs"]
    assert theirs.structuredContent is not None
    assert theirs.structuredContent["items"] == []
    assert "UNAUTHENTICATED" in refused.value.error.message
    assert anonymous.isError
    assert "UNAUTHENTICATED" in text_of(anonymous)


async def test_the_stdio_door(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVEMESH_AUTH", "required")
    (key,) = await keys_for(settings, "acme")
    async with serve_edge(settings) as edge:
        server = StdioServerParameters(
            command=sys.executable,
            args=["-m", "hivemesh.cli", "mcp-stdio", "--address", edge.mesh.address("gateway")],
            env={
                "PYTHONPATH": os.pathsep.join([str(ROOT / "gen"), str(ROOT / "services")]),
                "HIVEMESH_DATA_DIR": str(settings.data_dir),
                "HIVEMESH_METRICS_PORT": "off",
                "HIVEMESH_API_KEY": key,
                "HIVEMESH_USER": "ana",
            },
        )
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            added = await session.call_tool("list_add", {"list": "todo", "items": ["call mom"]})
            asked = await session.call_tool("ask_agent", {"text": "what is on my todo list?"})
    assert {"ask_agent", "calculator"} <= names
    assert not added.isError, text_of(added)
    assert not asked.isError, text_of(asked)
    assert "call mom" in text_of(asked)
