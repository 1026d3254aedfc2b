"""Two deployments sharing one Redis database, told apart by HIVEMESH_REDIS_PREFIX: neither sees the
other's conversation turns or tool idempotency records."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf import struct_pb2

from hivemesh.common.v1.content_pb2 import ROLE_USER
from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.memory.app import build_with
from hivemesh.memory.config import MemoryConfig
from hivemesh.memory.v1 import memory_service_pb2 as mpb
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import RedisKeys, Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer, ServiceApp
from hivemesh.tasks.config import TaskConfig
from hivemesh.tool.app import build_app
from hivemesh.tool.config import ToolConfig
from hivemesh.tool.decorator import Arg, tool
from hivemesh.tool.model import ToolOutput
from hivemesh.tool.v1 import tool_service_pb2 as tpb
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub
from tests.support import credentialed_channel, make_settings
from tests.tasks.stores import REDIS_URL

if TYPE_CHECKING:
    from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceAsyncStub
    from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceAsyncStub


@tool(name="stamp", side_effects=True, timeout_s=5.0)
async def stamp(label: Annotated[str, Arg(min_length=1)]) -> ToolOutput:
    """Answer with a value no two runs share, so a replayed result is told from a new run.

    Args:
        label: what to stamp.
    """
    value = uuid.uuid4().hex
    return ToolOutput({"value": value}, f"{label} {value}")


@contextlib.asynccontextmanager
async def served(app: ServiceApp, settings: Settings) -> AsyncIterator[grpc.aio.Channel]:
    server = MeshServer(app, settings.server, 0, Metrics())
    await server.start()
    channel = credentialed_channel(f"127.0.0.1:{server.port}", settings)
    try:
        yield channel
    finally:
        await channel.close(None)
        await server.stop(1.0)


@contextlib.asynccontextmanager
async def deployment(
    data_dir: Path, prefix: str
) -> AsyncIterator[tuple[MemoryServiceAsyncStub, ToolServiceAsyncStub]]:
    """The memory and tool services of one deployment, configured from its environment."""
    env = {
        "HIVEMESH_REDIS_PREFIX": prefix,
        "HIVEMESH_MEMORY_EMBEDDER": "hashing",
        "HIVEMESH_TOOL_PROCESSES": "1",
    }
    settings = make_settings(data_dir, HIVEMESH_REDIS_URL=REDIS_URL, **env)
    channels = ChannelFactory(settings)
    memory = build_with(settings, channels, MemoryConfig.from_env(env))
    tools = build_app(settings, channels, ToolConfig.from_env(env), extra_tools=[stamp])
    try:
        async with served(memory, settings) as memory_channel, served(tools, settings) as tool_channel:
            yield MemoryServiceStub(memory_channel), ToolServiceStub(tool_channel)
    finally:
        await channels.close()


async def _keys(client: aioredis.Redis, pattern: str) -> list[bytes]:
    return [key async for key in client.scan_iter(match=pattern)]


@pytest.mark.redis
async def test_deployments_with_different_prefixes_share_no_turns_or_tool_records(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:12]
    scope = Scope(tenant_id="acme", user_id="ana", session_id=f"shared-{run}")
    prefixes = {"blue": f"hmtest:{run}:blue:{{tasks}}", "green": f"hmtest:{run}:green"}
    client = aioredis.Redis.from_url(REDIS_URL)
    arguments = struct_pb2.Struct()
    arguments.update({"label": "order"})
    invoke = tpb.InvokeToolRequest(
        tool_name="stamp", arguments=arguments, idempotency_key=f"{run}:1", scope=scope, task_id=run
    )
    try:
        async with (
            deployment(tmp_path / "blue", prefixes["blue"]) as (blue_memory, blue_tools),
            deployment(tmp_path / "green", prefixes["green"]) as (green_memory, green_tools),
        ):
            await blue_memory.AppendTurns(
                mpb.AppendTurnsRequest(
                    scope=scope, turns=[mpb.Turn(role=ROLE_USER, text="blue's secret")], request_id="r1"
                )
            )
            green_context = await green_memory.GetContext(mpb.GetContextRequest(scope=scope))
            assert list(green_context.turns) == []
            # The same request id is green's own first append, not a repeat of blue's.
            appended = await green_memory.AppendTurns(
                mpb.AppendTurnsRequest(
                    scope=scope, turns=[mpb.Turn(role=ROLE_USER, text="green's own")], request_id="r1"
                )
            )
            assert appended.turn_count == 1
            blue_context = await blue_memory.GetContext(mpb.GetContextRequest(scope=scope))
            assert [t.text for t in blue_context.turns] == ["blue's secret"]

            blue_first = await blue_tools.InvokeTool(invoke)
            green_first = await green_tools.InvokeTool(invoke)
            assert not green_first.replayed  # blue's record of the key is not green's
            assert green_first.display != blue_first.display
            blue_again = await blue_tools.InvokeTool(invoke)
            assert blue_again.replayed
            assert blue_again.display == blue_first.display

        # Each deployment's keys are under its own names (the prefix without the tasks' hash tag).
        namespaces = {"blue": f"hmtest:{run}:blue:tasks", "green": f"hmtest:{run}:green"}
        for colour, prefix in prefixes.items():
            keys = RedisKeys(prefix)
            assert keys.namespace == namespaces[colour]
            assert await _keys(client, f"{keys.memory}turns/*")
            assert await _keys(client, f"{keys.tool_idempotency}*")
    finally:
        # Every key the test wrote names its run.
        leftovers = await _keys(client, f"*{run}*")
        if leftovers:
            await client.delete(*leftovers)
        await client.aclose()


@pytest.mark.parametrize(
    ("prefix", "namespace"),
    [("acme", "acme"), ("acme:{tasks}", "acme:tasks"), ("{staging}", "staging")],
)
def test_every_service_keeps_its_redis_keys_under_the_deployment_prefix(prefix: str, namespace: str) -> None:
    env = {"HIVEMESH_REDIS_PREFIX": prefix}
    # The queue keeps the prefix whole: its hash tag holds the queue's keys in one cluster slot.
    assert TaskConfig.from_env(env).redis_prefix == prefix
    # Memory and tool keys need no common slot: the braces are left out so they spread.
    assert MemoryConfig.from_env(env).redis_prefix == f"{namespace}:memory:"
    assert ToolConfig.from_env(env).redis_prefix == f"{namespace}:tool:idempotency:"
