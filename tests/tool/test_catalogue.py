"""The catalogue version: what changes it, what does not, and how ToolService reports it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import struct_pb2

from hivemesh.mesh.config import Settings
from hivemesh.tool.app import build_app
from hivemesh.tool.builtins import discover
from hivemesh.tool.config import ToolConfig
from hivemesh.tool.registry import Registry
from hivemesh.tool.v1 import tool_service_pb2 as pb
from tests.support import rpc_error
from tests.tool.fakes import InMemoryRecords, RecordingScheduler
from tests.tool.serving import channels, serving
from tests.tool.shelf import Shelf, echo, echo_repeating

if TYPE_CHECKING:
    from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceAsyncStub as Stub


def args(**values: Any) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def test_the_version_names_the_set_of_specs() -> None:
    shelf = Shelf()
    registry = Registry(discover(), [shelf])
    empty = registry.catalogue().version
    assert registry.catalogue().version == empty  # stable while nothing changes

    shelf.put(echo())
    added = registry.catalogue().version
    assert added != empty

    shelf.put(echo_repeating())  # same name, another schema
    changed = registry.catalogue().version
    assert changed not in (empty, added)

    shelf.put(echo())  # a new object with the old spec: the old version again
    assert registry.catalogue().version == added

    shelf.take("shelf.echo")
    assert registry.catalogue().version == empty


def test_replicas_with_the_same_tools_agree_on_the_version() -> None:
    one = Registry(discover(), [Shelf(echo(), echo("shelf.other"))])
    other = Registry([*reversed(discover())], [Shelf(echo("shelf.other"), echo())])
    assert one.catalogue().version == other.catalogue().version
    assert one.catalogue().specs == other.catalogue().specs


@pytest.fixture
def shelf() -> Shelf:
    return Shelf(echo())


@pytest.fixture
async def stub(settings: Settings, shelf: Shelf) -> AsyncIterator[Stub]:
    app = build_app(
        settings,
        channels(settings),
        ToolConfig(random_seed=1),
        records=InMemoryRecords(),
        scheduler=RecordingScheduler(),
        sources=[shelf],
    )
    async with serving(app, settings) as client:
        yield client


async def test_every_page_names_the_catalogue_version(stub: Stub) -> None:
    versions = set()
    names: list[str] = []
    token = ""
    while True:
        page = await stub.ListTools(pb.ListToolsRequest(page_size=3, page_token=token))
        assert not page.unchanged
        versions.add(page.catalogue_version)
        names += [t.name for t in page.tools]
        token = page.next_page_token
        if not token:
            break
    assert len(versions) == 1
    assert "shelf.echo" in names
    assert names == sorted(names)


async def test_a_conditional_list_answers_unchanged_while_the_version_holds(stub: Stub, shelf: Shelf) -> None:
    full = await stub.ListTools(pb.ListToolsRequest(page_size=1000))
    same = await stub.ListTools(
        pb.ListToolsRequest(page_size=1000, cached_catalogue_version=full.catalogue_version)
    )
    assert same.unchanged
    assert (list(same.tools), same.next_page_token) == ([], "")
    assert same.catalogue_version == full.catalogue_version

    shelf.take("shelf.echo")
    after = await stub.ListTools(
        pb.ListToolsRequest(page_size=1000, cached_catalogue_version=full.catalogue_version)
    )
    assert not after.unchanged
    assert after.catalogue_version != full.catalogue_version
    assert [t.name for t in after.tools] == [t.name for t in full.tools if t.name != "shelf.echo"]


async def test_an_unknown_cached_version_gets_the_full_list(stub: Stub) -> None:
    listed = await stub.ListTools(pb.ListToolsRequest(page_size=1000, cached_catalogue_version="gone:7"))
    assert not listed.unchanged
    assert "calculator" in {t.name for t in listed.tools}


@pytest.mark.parametrize("version", ["x" * 65, "has space", "ünïcode"])
async def test_a_malformed_cached_version_is_invalid_argument(stub: Stub, version: str) -> None:
    error = await rpc_error(stub.ListTools(pb.ListToolsRequest(cached_catalogue_version=version)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in error.field_violations] == ["cached_catalogue_version"]


async def test_a_cached_version_with_a_page_token_is_invalid_argument(stub: Stub) -> None:
    first = await stub.ListTools(pb.ListToolsRequest(page_size=2))
    error = await rpc_error(
        stub.ListTools(
            pb.ListToolsRequest(
                page_token=first.next_page_token, cached_catalogue_version=first.catalogue_version
            )
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.metadata["field"] == "cached_catalogue_version"
    assert [f for f, _ in error.field_violations] == ["cached_catalogue_version"]


async def test_tool_answers_carry_the_current_version(stub: Stub, shelf: Shelf) -> None:
    before = (await stub.ListTools(pb.ListToolsRequest())).catalogue_version
    reply = await stub.InvokeTool(pb.InvokeToolRequest(tool_name="shelf.echo", arguments=args(text="hi")))
    assert reply.catalogue_version == before

    shelf.put(echo_repeating())
    reply = await stub.InvokeTool(pb.InvokeToolRequest(tool_name="shelf.echo", arguments=args(text="hi")))
    changed = (await stub.ListTools(pb.ListToolsRequest())).catalogue_version
    assert reply.catalogue_version == changed != before

    streamed = [
        piece
        async for piece in stub.InvokeToolStream(
            pb.InvokeToolStreamRequest(tool_name="shelf.echo", arguments=args(text="hi", times=2))
        )
    ]
    assert streamed[-1].result.display == "hihi"
    assert streamed[-1].result.catalogue_version == changed


async def test_a_removed_tool_is_not_found_with_the_new_version(stub: Stub, shelf: Shelf) -> None:
    before = (await stub.ListTools(pb.ListToolsRequest())).catalogue_version
    shelf.take("shelf.echo")
    error = await rpc_error(
        stub.InvokeTool(pb.InvokeToolRequest(tool_name="shelf.echo", arguments=args(text="hi")))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "TOOL_NOT_FOUND")
    assert error.metadata["tool"] == "shelf.echo"
    now = (await stub.ListTools(pb.ListToolsRequest())).catalogue_version
    assert error.metadata["catalogue_version"] == now != before
