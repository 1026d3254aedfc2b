"""The MCP bridge's streamable HTTP transport, against the test server run as its own process."""

from __future__ import annotations

import asyncio
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
from tests.tool.test_mcp import SERVER, args, write_config

if TYPE_CHECKING:
    from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceAsyncStub as Stub


class HttpServer:
    """The test MCP server over streamable HTTP on 127.0.0.1; it can be killed and started again on
    the same port."""

    def __init__(self) -> None:
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def start(self) -> None:
        assert self._process is None
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(SERVER), "--http", str(self.port), stdout=asyncio.subprocess.PIPE
        )
        self._process = process
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 10)
        assert line, "the MCP server exited before it listened"
        self.port = int(line)
        await self._until_accepting()

    async def _until_accepting(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
            else:
                writer.close()
                await writer.wait_closed()
                return

    async def kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.kill()
        await process.wait()


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    server = HttpServer()
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


def http(server: HttpServer, **options: object) -> dict[str, object]:
    return {"url": server.url, "restart_backoff_s": 0.1, "max_restart_backoff_s": 0.5, **options}


@pytest.fixture
async def stub(settings: Settings, tmp_path: Path, http_server: HttpServer) -> AsyncIterator[Stub]:
    config = ToolConfig(mcp_servers=write_config(tmp_path / "mcp.json", web=http(http_server, timeout_s=5)))
    async with serving(build_app(settings, channels(settings), config), settings) as client:
        yield client


async def test_http_tools_are_listed_with_their_schemas(stub: Stub) -> None:
    listed = await stub.ListTools(pb.ListToolsRequest(page_size=1000))
    tools = {t.name: t for t in listed.tools}
    assert {"web.echo", "web.add", "web.count", "web.hang"} <= set(tools)
    add = tools["web.add"]
    assert add.source == "mcp:web"
    schema = json_format.MessageToDict(add.arguments_schema)
    assert schema["required"] == ["a", "b"]
    assert schema["properties"]["a"]["type"] == "integer"
    assert "calculator" in tools


async def test_http_tools_run_through_invoke_tool(stub: Stub) -> None:
    reply = await stub.InvokeTool(pb.InvokeToolRequest(tool_name="web.echo", arguments=args(text="hello")))
    assert reply.display == "hello"
    summed = await stub.InvokeTool(pb.InvokeToolRequest(tool_name="web.add", arguments=args(a=2, b=40)))
    assert summed.display == "42"


async def test_http_arguments_are_checked_against_the_servers_schema(stub: Stub) -> None:
    missing = await rpc_error(stub.InvokeTool(pb.InvokeToolRequest(tool_name="web.add", arguments=args(a=2))))
    assert missing.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (missing.reason, missing.metadata["field"]) == ("INVALID_TOOL_ARGUMENTS", "arguments.b")
    wrong = await rpc_error(
        stub.InvokeTool(pb.InvokeToolRequest(tool_name="web.add", arguments=args(a="two", b=1)))
    )
    assert wrong.code == grpc.StatusCode.INVALID_ARGUMENT
    assert wrong.metadata["field"] == "arguments.a"


async def test_http_error_results_fail_the_call_clearly(stub: Stub) -> None:
    await mcp_checks.error_results_fail_the_call_clearly(stub, "web")


async def test_http_progress_notifications_are_streamed(stub: Stub) -> None:
    await mcp_checks.progress_is_streamed(stub, "web")


async def test_tools_the_http_server_announces_come_and_go(stub: Stub) -> None:
    await mcp_checks.announced_tools_come_and_go(stub, "web")


async def test_an_http_server_that_never_answers_is_bounded_by_the_deadline(stub: Stub) -> None:
    await mcp_checks.a_silent_server_is_bounded_by_the_deadline(stub, "web")


async def test_an_http_server_going_away_fails_calls_clearly_and_is_reconnected(
    stub: Stub, http_server: HttpServer
) -> None:
    await http_server.kill()
    error = await rpc_error(
        stub.InvokeTool(pb.InvokeToolRequest(tool_name="web.echo", arguments=args(text="x")))
    )
    assert error.code == grpc.StatusCode.UNAVAILABLE
    # The tools stay listed while the server is away, and the other tools keep serving.
    listed = await stub.ListTools(pb.ListToolsRequest(page_size=1000))
    assert "web.echo" in {t.name for t in listed.tools}
    reply = await stub.InvokeTool(pb.InvokeToolRequest(tool_name="spell", arguments=args(word="ok")))
    assert reply.display == "O-K"
    # Back on the same address (a new process, so a new MCP session), it is used again.
    await http_server.start()
    assert (await until_reconnected(stub)).display == "back"


async def test_a_session_the_http_server_forgot_is_replaced(stub: Stub) -> None:
    reply = await stub.InvokeTool(pb.InvokeToolRequest(tool_name="web.forget_sessions"))
    assert reply.display == "forgotten"
    # The server answers the bridge's session with 404 now: the call fails, the bridge starts another.
    error = await rpc_error(
        stub.InvokeTool(pb.InvokeToolRequest(tool_name="web.echo", arguments=args(text="x")))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "MCP_SESSION_ENDED")
    assert (await until_reconnected(stub)).display == "back"


async def test_an_http_server_going_away_mid_call_fails_that_call(
    stub: Stub, http_server: HttpServer
) -> None:
    call = asyncio.ensure_future(stub.InvokeTool(pb.InvokeToolRequest(tool_name="web.hang"), timeout=30))
    await asyncio.sleep(0.3)
    await http_server.kill()
    error = await rpc_error(call)
    assert error.code == grpc.StatusCode.UNAVAILABLE
    await http_server.start()
    assert (await until_reconnected(stub)).display == "back"


async def until_reconnected(stub: Stub) -> pb.InvokeToolResponse:
    """Calls fail UNAVAILABLE until the bridge has a session with the server again, then succeed."""
    deadline = time.monotonic() + 20
    request = pb.InvokeToolRequest(tool_name="web.echo", arguments=args(text="back"))
    codes: set[grpc.StatusCode] = set()
    while time.monotonic() < deadline:
        try:
            reply = await stub.InvokeTool(request, timeout=5)
        except grpc.aio.AioRpcError as exc:
            codes.add(exc.code())
        else:
            assert codes <= {grpc.StatusCode.UNAVAILABLE}, codes
            return reply
        await asyncio.sleep(0.1)
    raise AssertionError(f"the bridge did not reconnect to the MCP server (calls failed with {codes})")
