"""Requests that do not decode, or hold values the services cannot use, are the caller's error:
INVALID_ARGUMENT naming the field (or, for bytes that show none, the message), one line in the log
and no traceback, on the gRPC path (raw bytes through a generic channel) and in-process alike."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.memory.v1 import memory_service_pb2 as mem
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.config import Settings
from hivemesh.mesh.errors import STATUS_LIMIT
from hivemesh.mesh.status import details_of
from tests.security.errors_harness import PATHS, Served, details_bytes, serve, trailer_bytes
from tests.security.fuzz_requests import varint

# The documented bound on an error's trailers (docs/security.md).
TRAILER_LIMIT = 6 * 1024
SCOPE = Scope(tenant_id="t1", user_id="ana", session_id="s1")


@pytest.fixture(params=PATHS)
async def served(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Served]:
    async with serve(settings, ["memory", "gateway"], request.param) as running:
        yield running


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field, as the wire format writes it."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def nested_struct(levels: int) -> bytes:
    """A Struct holding a Struct under "a", ``levels`` deep: {"a": {"a": ... {}}}."""
    inner = b""
    for _ in range(levels):
        value = field(5, inner)  # Value.struct_value
        inner = field(1, field(1, b"a") + field(2, value))  # Struct.fields entry "a"
    return inner


async def rejected(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


def one_line_about(caplog: pytest.LogCaptureFixture, method: str) -> logging.LogRecord:
    """The only record logged since the last clear: one line about ``method``, no traceback."""
    assert len(caplog.records) == 1, [r.getMessage() for r in caplog.records]
    record = caplog.records[0]
    assert method in record.getMessage()
    assert "\n" not in record.getMessage()
    assert record.exc_info is None
    assert record.levelno <= logging.INFO
    return record


async def test_invalid_utf8_in_a_string_field_names_the_field(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.clear()
    error = await rejected(served.raw("gateway", "GetTask")(bytes.fromhex("0a02fffe")))
    status = details_of(error)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.message == "the request could not be decoded: task_id: is not valid UTF-8"
    assert status.field_violations == (("task_id", "is not valid UTF-8"),)
    assert (status.reason, status.domain) == ("UNDECODABLE_REQUEST", "hivemesh.gateway")
    assert status.metadata["field"] == "task_id"
    assert "DecodeError" not in status.message
    assert trailer_bytes(error) < TRAILER_LIMIT
    one_line_about(caplog, "GetTask")
    # Counted as the bad request it is.
    assert await served.counted("gateway", "GetTask", "INVALID_ARGUMENT", 1) == 1


async def test_invalid_utf8_deep_in_a_request_names_its_path(served: Served) -> None:
    turns = field(2, field(2, b"hello")) + field(2, field(2, b"caf\xc3"))  # turns[1].text: cut short
    request = field(1, field(2, b"ana") + field(3, b"s1")) + turns
    status = details_of(await rejected(served.raw("memory", "AppendTurns")(request)))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.field_violations == (("turns[1].text", "is not valid UTF-8"),)


async def test_a_struct_nested_too_deep_names_the_field(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    request = field(2, b"profile") + field(3, b"k") + field(4, nested_struct(34))  # kind, key, value
    caplog.clear()
    error = await rejected(served.raw("memory", "PutRecord")(request))
    status = details_of(error)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.message.startswith("the request could not be decoded: value: nests messages more than")
    assert status.field_violations[0][0] == "value"
    assert status.reason == "UNDECODABLE_REQUEST"
    assert trailer_bytes(error) < TRAILER_LIMIT
    one_line_about(caplog, "PutRecord")


async def test_a_streaming_call_that_does_not_decode_is_answered_the_same(served: Served) -> None:
    call = served.channel("gateway").unary_stream(
        "/hivemesh.gateway.v1.GatewayService/WatchTask", request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in call(bytes.fromhex("0a02fffe")):
            pass
    status = details_of(raised.value)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.field_violations == (("task_id", "is not valid UTF-8"),)


async def test_reflection_refuses_undecodable_requests_too(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Reflection (a bidirectional stream, so over gRPC only) shares the decoding stage."""
    caplog.set_level(logging.INFO)
    async with serve(settings, ["gateway"], "grpc") as served:
        call = served.channel("gateway").stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=None,
            response_deserializer=None,
        )

        async def requests(payload: bytes) -> AsyncIterator[bytes]:
            yield payload

        # A valid request still gets its answer through the decoding stage.
        answers = [answer async for answer in call(requests(field(7, b"")))]  # list_services
        assert b"hivemesh.gateway.v1.GatewayService" in answers[0]
        caplog.clear()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in call(requests(field(3, b"\xff\xfe"))):  # file_by_filename
                pass
        status = details_of(raised.value)
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT
        assert status.field_violations == (("file_by_filename", "is not valid UTF-8"),)
        one_line_about(caplog, "ServerReflectionInfo")


async def test_bytes_that_show_no_field_name_the_message(served: Served) -> None:
    status = details_of(await rejected(served.raw("gateway", "GetTask")(b"\xff\xff\xff")))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.message == "the request could not be decoded as hivemesh.gateway.v1.GetTaskRequest"
    assert status.metadata["message_type"] == "hivemesh.gateway.v1.GetTaskRequest"
    assert status.field_violations == ()


async def test_many_undecodable_requests_cost_one_short_line_each(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.clear()
    call = served.raw("gateway", "GetTask")
    for _ in range(100):
        await rejected(call(bytes.fromhex("0a02fffe")))
    assert len(caplog.records) == 100
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in caplog.records)
    assert sum(len(r.getMessage()) for r in caplog.records) < 100 * 200
    assert await served.counted("gateway", "GetTask", "INVALID_ARGUMENT", 100) == 100


async def test_nan_in_a_record_value_names_the_number(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    value = struct_pb2.Struct()
    value.update({"x": float("nan"), "ok": 1})
    caplog.clear()
    stub = MemoryServiceStub(served.channel("memory"))
    error = await rejected(
        stub.PutRecord(mem.PutRecordRequest(scope=SCOPE, kind="profile", key="k", value=value))
    )
    status = details_of(error)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.field_violations == (("value.x", "must be a finite number (JSON has no NaN or Infinity)"),)
    assert caplog.records == []  # a bad request, not an incident


@pytest.mark.parametrize("name", ["created_after", "created_before"])
async def test_a_timestamp_beyond_its_range_names_the_field(served: Served, name: str) -> None:
    request = gw.ListTasksRequest()
    getattr(request, name).CopyFrom(timestamp_pb2.Timestamp(seconds=2**62))
    error = await rejected(GatewayServiceStub(served.channel("gateway")).ListTasks(request))
    status = details_of(error)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.field_violations[0][0] == name
    assert details_bytes(error) <= STATUS_LIMIT
