"""The planner's cached tool catalogue against a real tool service: how many ListTools calls tasks
make, and how soon the planner sees tools come, change and go."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.bulkhead import WaitingBulkhead
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import ConfigError, Settings
from hivemesh.mesh.credentials import acting_as
from hivemesh.mesh.errors import NotFound, Unavailable
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer
from hivemesh.planner.clients import GrpcTools
from hivemesh.planner.config import PlannerConfig
from hivemesh.planner.v1 import planner_service_pb2 as pb
from hivemesh.planner.v1.planner_service_pb2_grpc import PlannerServiceStub
from hivemesh.tool.app import build_app
from hivemesh.tool.config import ToolConfig
from hivemesh.tool.v1.tool_service_pb2 import InvokeToolResponse
from tests.support import mesh_minter, start_mesh
from tests.tool.fakes import InMemoryRecords, RecordingScheduler
from tests.tool.shelf import Shelf, echo, echo_repeating

MCP_SERVER = Path(__file__).parents[1] / "tool" / "mcp_server.py"
SCOPE = Scope(tenant_id="default", user_id="ana", session_id="s1")


def calls(metrics: Metrics, method: str) -> int:
    """RPCs of ``method`` the tool service answered, whatever their status."""
    return int(
        sum(
            sample.value
            for family in metrics.registry.collect()
            for sample in family.samples
            if sample.name == "grpc_server_handled_total"
            and sample.labels["grpc_service"] == "hivemesh.tool.v1.ToolService"
            and sample.labels["grpc_method"] == method
        )
    )


class ToolServer:
    """A real tool service on its own port, serving the built-ins plus a shelf of tools."""

    def __init__(
        self, settings: Settings, shelf: Shelf, port: int = 0, config: ToolConfig | None = None
    ) -> None:
        self.metrics = Metrics()
        app = build_app(
            settings,
            ChannelFactory(settings),
            config or ToolConfig(random_seed=1),
            records=InMemoryRecords(),
            scheduler=RecordingScheduler(),
            sources=[shelf],
        )
        self._server = MeshServer(app, settings.server, port, self.metrics)

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop(0.5)

    @property
    def port(self) -> int:
        return self._server.port

    def list_calls(self) -> int:
        return calls(self.metrics, "ListTools")


@pytest.fixture(autouse=True)
def _acting_for_a_user(settings: Settings) -> Iterator[None]:
    """The test's own calls to the tool service act for a user, as a worker running a task does."""
    with acting_as(mesh_minter(settings).mint(SCOPE.tenant_id, SCOPE.user_id)):
        yield


@pytest.fixture
def shelf() -> Shelf:
    return Shelf(echo())


@pytest.fixture
async def tool_server(settings: Settings, shelf: Shelf) -> AsyncIterator[ToolServer]:
    server = ToolServer(settings, shelf)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def channels(settings: Settings, tool_server: ToolServer) -> AsyncIterator[ChannelFactory]:
    factory = ChannelFactory(settings, {"tool": f"127.0.0.1:{tool_server.port}"})
    try:
        yield factory
    finally:
        await factory.close()


def planner_tools(channels: ChannelFactory, max_age_s: float) -> GrpcTools:
    return GrpcTools(channels, WaitingBulkhead("tool", 64), catalogue_max_age_s=max_age_s)


async def names(tools: GrpcTools) -> set[str]:
    return {spec.name for spec in await tools.list_tools()}


async def invoke(tools: GrpcTools, tool: str, **arguments: Any) -> InvokeToolResponse:
    return await tools.invoke(tool, arguments, idempotency_key="", scope=SCOPE, task_id="")


async def test_repeated_tasks_make_one_list_tools_call(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Longer than the test, so that only a change could make the planner list again.
    monkeypatch.setenv("HIVEMESH_PLANNER_TOOL_CATALOGUE_MAX_AGE", "10m")
    mesh = await start_mesh(settings)
    try:
        planner = PlannerServiceStub(mesh.client("planner"))
        gateway = GatewayServiceStub(mesh.client("gateway"))

        async def run_directly(n: int) -> str:
            scope = Scope(user_id="ana", session_id="s1")
            request = pb.RunTaskRequest(text=f"what is {n} + {n}", scope=scope)
            events = [r.event async for r in planner.RunTask(request)]
            return events[-1].completed.answer

        async def run_queued(n: int) -> str:
            scope = Scope(user_id="bo", session_id="s2")
            text = f"what is {n} times 3"
            request = gw.ExecuteTaskRequest(request_id=f"queued-{n}", text=text, scope=scope)
            events = [r.event async for r in gateway.ExecuteTask(request)]
            return events[-1].completed.answer

        answers = [await run_directly(n) for n in range(1, 4)]
        answers += await asyncio.gather(*(run_directly(n) for n in range(4, 8)))
        answers += await asyncio.gather(*(run_queued(n) for n in range(1, 6)))
        assert answers == [str(2 * n) for n in range(1, 8)] + [str(3 * n) for n in range(1, 6)]
        assert calls(mesh.metrics, "InvokeTool") == 12
        assert calls(mesh.metrics, "ListTools") == 1
    finally:
        await mesh.stop()


async def test_many_tasks_at_once_share_one_refresh(
    channels: ChannelFactory, tool_server: ToolServer, shelf: Shelf
) -> None:
    tools = planner_tools(channels, max_age_s=600)
    listed = await asyncio.gather(*(names(tools) for _ in range(20)))
    assert all("shelf.echo" in found for found in listed)
    assert tool_server.list_calls() == 1

    shelf.put(echo("shelf.new"))
    await invoke(tools, "calculator", expression="1 + 1")  # names the new version
    listed = await asyncio.gather(*(names(tools) for _ in range(20)))
    assert all("shelf.new" in found for found in listed)
    assert tool_server.list_calls() == 2


async def test_a_tool_added_at_run_time_is_seen_within_the_max_age(
    channels: ChannelFactory, tool_server: ToolServer, shelf: Shelf
) -> None:
    max_age = 0.5
    tools = planner_tools(channels, max_age_s=max_age)
    first_listed = time.monotonic()
    assert "shelf.new" not in await names(tools)
    shelf.put(echo("shelf.new"))
    added = time.monotonic()
    assert "shelf.new" not in await names(tools)  # the copy, not a call
    assert tool_server.list_calls() == 1
    while "shelf.new" not in await names(tools):
        assert time.monotonic() - added < max_age + 1.0
        await asyncio.sleep(0.02)
    assert time.monotonic() - first_listed >= max_age  # the copy was used for as long as it was fresh
    assert tool_server.list_calls() == 2


async def test_a_tool_answer_naming_another_version_refreshes_at_once(
    channels: ChannelFactory, tool_server: ToolServer, shelf: Shelf
) -> None:
    tools = planner_tools(channels, max_age_s=600)
    before = await tools.list_tools()
    shelf.put(echo_repeating())  # the same tool with another schema
    reply = await invoke(tools, "calculator", expression="2 * 3")
    assert reply.display == "6"
    after = {spec.name: spec for spec in await tools.list_tools()}
    assert "times" in json_format.MessageToDict(after["shelf.echo"].arguments_schema)["properties"]
    assert after["shelf.echo"] != next(s for s in before if s.name == "shelf.echo")
    assert tool_server.list_calls() == 2

    await invoke(tools, "shelf.echo", text="hi", times=2)  # nothing changed: no refresh
    await tools.list_tools()
    assert tool_server.list_calls() == 2


async def test_a_removed_tool_fails_clearly_and_the_copy_refreshes(
    channels: ChannelFactory, tool_server: ToolServer, shelf: Shelf
) -> None:
    tools = planner_tools(channels, max_age_s=600)
    assert "shelf.echo" in await names(tools)
    shelf.take("shelf.echo")
    with pytest.raises(NotFound) as failed:
        await invoke(tools, "shelf.echo", text="hi")
    assert failed.value.reason == "TOOL_NOT_FOUND"
    assert failed.value.message == "no tool named 'shelf.echo' is installed"
    assert not failed.value.retryable
    assert "shelf.echo" not in await names(tools)
    assert tool_server.list_calls() == 2

    # A name that was never installed changes nothing: the copy stays.
    with pytest.raises(NotFound):
        await invoke(tools, "no.such.tool")
    await tools.list_tools()
    assert tool_server.list_calls() == 2


async def test_a_tool_an_mcp_server_adds_reaches_the_planner_within_the_max_age(
    settings: Settings, tmp_path: Path
) -> None:
    max_age = 0.5
    mcp = {"command": sys.executable, "args": [str(MCP_SERVER)], "timeout_s": 5}
    servers = tmp_path / "mcp.json"
    servers.write_text(json.dumps({"servers": {"demo": mcp}}), encoding="utf-8")
    server = ToolServer(settings, Shelf(), config=ToolConfig(mcp_servers=servers))
    await server.start()
    factory = ChannelFactory(settings, {"tool": f"127.0.0.1:{server.port}"})
    try:
        tools = planner_tools(factory, max_age_s=max_age)
        assert "demo.shout" not in await names(tools)
        await invoke(tools, "demo.learn", name="shout")
        learned = time.monotonic()
        while "demo.shout" not in await names(tools):
            assert time.monotonic() - learned < max_age + 2.0
            await asyncio.sleep(0.02)
        assert (await invoke(tools, "demo.shout")).display == "shout"
    finally:
        await factory.close()
        await server.stop()


async def until_answering(tools: GrpcTools) -> InvokeToolResponse:
    """Call a tool until the restarted service answers (the channel reconnects with backoff)."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return await invoke(tools, "calculator", expression="1 + 2")
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_a_restarted_tool_service_is_noticed_by_its_first_answer(
    settings: Settings, tool_server: ToolServer, channels: ChannelFactory
) -> None:
    tools = planner_tools(channels, max_age_s=600)
    old = await tools.list_tools()
    port = tool_server.port
    await tool_server.stop()

    # Back on the same address with one more tool: its first answer names another version.
    restarted = ToolServer(settings, Shelf(echo(), echo("shelf.new")), port)
    await restarted.start()
    try:
        await until_answering(tools)
        assert "shelf.new" in await names(tools)
        assert restarted.list_calls() == 1
    finally:
        await restarted.stop()

    # Back again with the same tools: the same version, so the copy stays good without a call.
    again = ToolServer(settings, Shelf(echo(), echo("shelf.new")), port)
    await again.start()
    try:
        reply = await until_answering(tools)
        assert reply.display == "3"
        assert {s.name for s in await tools.list_tools()} == {s.name for s in old} | {"shelf.new"}
        assert again.list_calls() == 0
    finally:
        await again.stop()


def test_the_max_age_is_configurable() -> None:
    assert PlannerConfig.from_env({}).tool_catalogue_max_age_s == 5.0
    config = PlannerConfig.from_env({"HIVEMESH_PLANNER_TOOL_CATALOGUE_MAX_AGE": "250ms"})
    assert config.tool_catalogue_max_age_s == 0.25
    assert replace(config, tool_catalogue_max_age_s=0).tool_catalogue_max_age_s == 0
    with pytest.raises(ConfigError, match="HIVEMESH_PLANNER_TOOL_CATALOGUE_MAX_AGE"):
        PlannerConfig.from_env({"HIVEMESH_PLANNER_TOOL_CATALOGUE_MAX_AGE": "soon"})
