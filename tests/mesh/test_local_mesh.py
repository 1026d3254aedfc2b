"""The five services in one process give the same answers whether they call each other in-process
or over gRPC on loopback."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import TaskEvent
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.config import SERVICES
from hivemesh.mesh.local_channel import LocalChannel
from tests.support import RunningMesh, make_settings, start_mesh

pytestmark = pytest.mark.slow

# (user, session, text): a calculation, units, and a memory told in one session and asked in another.
CONVERSATION = [
    ("ana", "s1", "what is 12 * (3 + 4)?"),
    ("ana", "s1", "convert 5 miles to km"),
    ("bo", "one", "remember that my sister's name is Ana"),
    ("bo", "two", "what's my sister's name?"),
]


async def execute(mesh: RunningMesh, user: str, session: str, text: str) -> list[TaskEvent]:
    stub = GatewayServiceStub(mesh.client("gateway"))
    request = gw.ExecuteTaskRequest(
        request_id=f"{user}-{session}-{text}", text=text, scope=Scope(user_id=user, session_id=session)
    )
    return [response.event async for response in stub.ExecuteTask(request)]


def outline(events: list[TaskEvent]) -> tuple[list[str], str]:
    """What a client sees of a task, without ids and times: the kinds of its events and its answer."""
    return [str(e.WhichOneof("kind")) for e in events], events[-1].completed.answer


async def converse(data_dir: Path, *, local_calls: bool) -> list[tuple[list[str], str]]:
    settings = replace(make_settings(data_dir), local_calls=local_calls)
    mesh = await start_mesh(settings)
    try:
        for service in SERVICES:
            assert mesh.channels.is_local(service) is local_calls
        assert isinstance(mesh.channels.channel("tool"), LocalChannel) is local_calls
        return [outline(await execute(mesh, *turn)) for turn in CONVERSATION]
    finally:
        await mesh.stop()


async def test_local_calls_on_and_off_give_the_same_answers(tmp_path: Path) -> None:
    in_process = await converse(tmp_path / "in-process", local_calls=True)
    over_grpc = await converse(tmp_path / "grpc", local_calls=False)
    assert in_process == over_grpc
    answers = [answer for _, answer in in_process]
    assert answers[0] == "84"
    assert answers[1].startswith("8.04")
    assert "Ana" in answers[3]
