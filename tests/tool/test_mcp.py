from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import json_format

from hivemesh.mesh.config import Settings
from hivemesh.tool.app import build_app
from hivemesh.tool.config import ToolConfig
from hivemesh.tool.v1 import tool_service_pb2 as pb
from tests.support import rpc_error
from tests.tool import mcp_checks
from tests.tool.serving import channels, serving

if TYPE_CHECKING:
    from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceAsyncStub as Stub

SERVER = Path(__file__).with_name("mcp_server.py")


def write_config(path: Path, **servers: dict[str, object]) -> Path:
    path.write_text(json.dumps({"servers": servers}), encoding="utf-8")
    return path


def stdio(*extra: str, **options: object) -> dict[str, object]:
    return {"command": sys.executable, "args": [str(SERVER), *extra], "restart_backoff_s": 0.1, **options}


args = mcp_checks.args


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
async def stub(settings: Settings, tmp_path: Path) -> AsyncIterator[Stub]:
    config = ToolConfig(mcp_servers=write_config(tmp_path / "mcp.json", demo=stdio(timeout_s=5)))
    app = build_app(settings, channels(settings), config)
    async with serving(app, settings) as client:
        yield client


async def test_mcp_tools_are_listed_with_their_schemas(stub: Stub) -> None:
    listed = await stub.ListTools(pb.ListToolsRequest(page_size=1000))
    tools = {t.name: t for t in listed.tools}
    assert {"demo.echo", "demo.add", "demo.count", "demo.crash", "demo.hang"} <= set(tools)
    add = tools["demo.add"]
    assert add.source == "mcp:demo"
    assert json_format.MessageToDict(add.arguments_schema)["required"] == ["a", "b"]
    assert "calculator" in tools  # the built-ins are still there


async def test_mcp_tools_run_through_invoke_tool(stub: Stub) -> None:
    reply = await stub.InvokeTool(pb.InvokeToolRequest(tool_name="demo.echo", arguments=args(text="hello")))
    assert reply.display == "hello"
    summed = await stub.InvokeTool(pb.InvokeToolRequest(tool_name="demo.add", arguments=args(a=2, b=40)))
    assert summed.display == "42"


async def test_mcp_arguments_are_checked_against_the_servers_schema(stub: Stub) -> None:
    error = await rpc_error(stub.InvokeTool(pb.InvokeToolRequest(tool_name="demo.add", arguments=args(a=2))))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.reason, error.metadata["field"]) == ("INVALID_TOOL_ARGUMENTS", "arguments.b")


async def test_an_error_result_fails_the_call_clearly(stub: Stub) -> None:
    await mcp_checks.error_results_fail_the_call_clearly(stub, "demo")


async def test_progress_notifications_are_streamed(stub: Stub) -> None:
    await mcp_checks.progress_is_streamed(stub, "demo")


async def test_tools_the_server_announces_come_and_go(stub: Stub) -> None:
    await mcp_checks.announced_tools_come_and_go(stub, "demo")


async def test_a_server_that_never_answers_is_bounded_by_the_deadline(stub: Stub) -> None:
    await mcp_checks.a_silent_server_is_bounded_by_the_deadline(stub, "demo")


async def test_a_server_crashing_mid_call_fails_that_call_and_is_restarted(stub: Stub) -> None:
    error = await rpc_error(stub.InvokeTool(pb.InvokeToolRequest(tool_name="demo.crash")))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "TOOL_CRASHED")
    assert (
        await stub.InvokeTool(pb.InvokeToolRequest(tool_name="calculator", arguments=args(expression="1+1")))
    ).display == "2"
    reply = await until_restarted(stub)
    assert reply.display == "back"


async def until_restarted(stub: Stub) -> pb.InvokeToolResponse:
    """Calls fail UNAVAILABLE while the server restarts, then succeed."""
    deadline = time.monotonic() + 20
    request = pb.InvokeToolRequest(tool_name="demo.echo", arguments=args(text="back"))
    codes: set[grpc.StatusCode] = set()
    while time.monotonic() < deadline:
        try:
            reply = await stub.InvokeTool(request)
        except grpc.aio.AioRpcError as exc:
            codes.add(exc.code())
        else:
            assert codes <= {grpc.StatusCode.UNAVAILABLE}
            return reply
        await asyncio.sleep(0.1)
    raise AssertionError(f"the MCP server was not restarted (calls failed with {codes})")


async def test_shutdown_kills_the_whole_process_group(settings: Settings, tmp_path: Path) -> None:
    config = ToolConfig(mcp_servers=write_config(tmp_path / "mcp.json", demo=stdio()))
    async with serving(build_app(settings, channels(settings), config), settings) as client:
        reply = await client.InvokeTool(pb.InvokeToolRequest(tool_name="demo.spawn_child"))
        child = int(reply.display)
        assert alive(child)
    for _ in range(50):
        if not alive(child):
            break
        await asyncio.sleep(0.1)
    assert not alive(child)


async def test_a_server_that_never_initialises_leaves_the_service_serving(
    settings: Settings, tmp_path: Path
) -> None:
    mute = stdio("--silent", startup_timeout_s=0.5)
    config = ToolConfig(mcp_servers=write_config(tmp_path / "mcp.json", mute=mute))
    async with serving(build_app(settings, channels(settings), config), settings) as client:
        listed = await client.ListTools(pb.ListToolsRequest(page_size=1000))
        assert not [t for t in listed.tools if t.source == "mcp:mute"]
        error = await rpc_error(client.InvokeTool(pb.InvokeToolRequest(tool_name="mute.echo")))
        assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "TOOL_NOT_FOUND")
        reply = await client.InvokeTool(pb.InvokeToolRequest(tool_name="spell", arguments=args(word="ok")))
        assert reply.display == "O-K"
