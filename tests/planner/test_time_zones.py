"""The user's time zone through the whole agent: set on a request, remembered in the profile,
used by the language service and the tools."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import TaskEvent
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.config import Settings
from hivemesh.world.zones import server_zone
from tests.support import RunningMesh, rpc_error, start_mesh

pytestmark = pytest.mark.slow


@pytest.fixture
async def agent(settings: Settings) -> AsyncIterator[RunningMesh]:
    mesh = await start_mesh(settings)
    try:
        yield mesh
    finally:
        await mesh.stop()


async def execute(mesh: RunningMesh, text: str, scope: Scope) -> list[TaskEvent]:
    stub = GatewayServiceStub(mesh.client("gateway"))
    request = gw.ExecuteTaskRequest(
        request_id=f"{scope.user_id}-{scope.session_id}-{text}", text=text, scope=scope
    )
    return [response.event async for response in stub.ExecuteTask(request)]


def answer(events: list[TaskEvent]) -> str:
    assert events[-1].WhichOneof("kind") == "completed", events[-1]
    return events[-1].completed.answer


async def test_a_reminder_is_due_at_the_hour_of_the_users_zone(agent: RunningMesh) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    before = datetime.now(tokyo)
    events = await execute(
        agent, "remind me at 5pm to call mum", Scope(user_id="kenji", session_id="s1", time_zone="Asia/Tokyo")
    )
    text = answer(events)
    m = re.search(r"Reminder set for (\d{4}-\d{2}-\d{2} \d{2}:\d{2}) Asia/Tokyo: call mum", text)
    assert m is not None, text
    shown = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=tokyo)
    assert shown.hour == 17
    assert timedelta(0) < shown - before <= timedelta(days=1)
    (result,) = [e.tool_result for e in events if e.WhichOneof("kind") == "tool_result"]
    due = datetime.fromisoformat(result.result.fields["due"].string_value.replace("Z", "+00:00"))
    assert due == shown  # the same instant: 08:00 UTC, not 17:00 UTC


async def test_the_zone_a_request_names_is_remembered_for_the_next(agent: RunningMesh) -> None:
    first = await execute(
        agent, "what time is it", Scope(user_id="lan", session_id="a", time_zone="Asia/Ho_Chi_Minh")
    )
    assert "(Asia/Ho_Chi_Minh)" in answer(first)
    # Another session of the same user names no zone: the profile remembers it.
    later = await execute(agent, "what time is it", Scope(user_id="lan", session_id="b"))
    assert "(Asia/Ho_Chi_Minh)" in answer(later)
    # A user who never named one is answered in the server's zone.
    other = await execute(agent, "what time is it", Scope(user_id="sam", session_id="a"))
    assert f"({server_zone()})" in answer(other)


async def test_today_is_the_users_date(agent: RunningMesh) -> None:
    # Kiritimati is 14 hours ahead of UTC, Pago Pago 11 behind: for 20 hours of every day their
    # dates differ, and each answer names its own zone's.
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        today = datetime.now(ZoneInfo(zone)).date()
        events = await execute(
            agent, "what day is it today", Scope(user_id=f"u-{zone[8:12]}", session_id="s", time_zone=zone)
        )
        assert f"{today:%A}" in answer(events)


@pytest.mark.parametrize(
    ("zone", "reason"), [("Mars/Olympus_Mons", "UNKNOWN_TIME_ZONE"), ("not a zone!", "")]
)
async def test_an_unknown_zone_is_refused_at_the_gateway(agent: RunningMesh, zone: str, reason: str) -> None:
    stub = GatewayServiceStub(agent.client("gateway"))
    request = gw.SubmitTaskRequest(
        request_id="bad-zone",
        text="what time is it",
        scope=Scope(user_id="ana", session_id="s", time_zone=zone),
    )
    status = await rpc_error(stub.SubmitTask(request))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.metadata["field"] == "scope.time_zone"
    if reason:
        assert status.reason == reason


async def test_a_reminder_on_the_first_monday_of_march(agent: RunningMesh) -> None:
    events = await execute(
        agent,
        "remind me to vote on the first monday of march",
        Scope(user_id="ada", session_id="s1", time_zone="America/Chicago"),
    )
    m = re.search(r"Reminder set for (\d{4}-\d{2}-\d{2}) 09:00 America/Chicago: vote$", answer(events))
    assert m is not None, answer(events)
    day = datetime.strptime(m.group(1), "%Y-%m-%d").date()
    assert (day.month, day.weekday()) == (3, 0)
    assert day.day <= 7


async def test_gibberish_is_out_of_scope(agent: RunningMesh) -> None:
    events = await execute(agent, "asdkj qwe zzz", Scope(user_id="ana", session_id="s1"))
    assert answer(events).startswith("Sorry, that's outside")
    (recognised,) = [e.intent_recognized for e in events if e.WhichOneof("kind") == "intent_recognized"]
    assert recognised.out_of_scope
