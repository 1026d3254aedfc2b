"""The user's time zone, remembered in the profile record by GetContext (both storage adapters)."""

from __future__ import annotations

import grpc
from google.protobuf import struct_pb2

from hivemesh.memory.v1 import memory_service_pb2 as pb
from tests.memory.harness import MemoryUnderTest, scope
from tests.support import rpc_error


def zoned(zone: str, session: str = "s1", user: str = "ana") -> pb.GetContextRequest:
    where = scope(user=user, session=session)
    where.time_zone = zone
    return pb.GetContextRequest(scope=where)


async def test_a_zone_named_once_is_remembered(memory: MemoryUnderTest) -> None:
    assert (await memory.stub.GetContext(zoned(""))).time_zone == ""
    assert (await memory.stub.GetContext(zoned("Africa/Johannesburg"))).time_zone == "Africa/Johannesburg"
    # Another session of the same user names none: the profile answers.
    assert (await memory.stub.GetContext(zoned("", session="s2"))).time_zone == "Africa/Johannesburg"
    record = (
        await memory.stub.GetRecord(pb.GetRecordRequest(scope=scope(), kind="profile", key="time_zone"))
    ).record
    assert record.value.fields["time_zone"].string_value == "Africa/Johannesburg"
    # A request naming another zone moves the user there; other users keep theirs.
    assert (await memory.stub.GetContext(zoned("Asia/Bangkok"))).time_zone == "Asia/Bangkok"
    assert (await memory.stub.GetContext(zoned("", session="s3"))).time_zone == "Asia/Bangkok"
    assert (await memory.stub.GetContext(zoned("", user="bo"))).time_zone == ""


async def test_a_profile_written_through_the_api_is_read_at_once(memory: MemoryUnderTest) -> None:
    await memory.stub.GetContext(zoned("Europe/Paris"))
    value = struct_pb2.Struct()
    value.update({"time_zone": "America/Chicago"})
    await memory.stub.PutRecord(
        pb.PutRecordRequest(scope=scope(), kind="profile", key="time_zone", value=value)
    )
    assert (await memory.stub.GetContext(zoned(""))).time_zone == "America/Chicago"
    await memory.stub.DeleteRecord(pb.DeleteRecordRequest(scope=scope(), kind="profile", key="time_zone"))
    assert (await memory.stub.GetContext(zoned(""))).time_zone == ""


async def test_unknown_zones_are_refused(memory: MemoryUnderTest) -> None:
    status = await rpc_error(memory.stub.GetContext(zoned("Mars/Olympus_Mons")))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (status.reason, status.metadata["field"]) == ("UNKNOWN_TIME_ZONE", "scope.time_zone")
    value = struct_pb2.Struct()
    value.update({"time_zone": "Mars/Olympus_Mons"})
    status = await rpc_error(
        memory.stub.PutRecord(
            pb.PutRecordRequest(scope=scope(), kind="profile", key="time_zone", value=value)
        )
    )
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.metadata["field"] == "value.time_zone"
