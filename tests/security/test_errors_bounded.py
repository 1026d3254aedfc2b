"""An error about a huge value stays small: the value is clipped in the message and the details, the
status fits in STATUS_LIMIT bytes, and a client reading a status it cannot decode keeps the call's
own code instead of raising."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import code_pb2, status_pb2

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.memory.v1 import memory_service_pb2 as mem
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.config import Settings
from hivemesh.mesh.errors import (
    DETAIL_LIMIT,
    MESSAGE_LIMIT,
    QUOTE_LIMIT,
    STATUS_LIMIT,
    FieldViolation,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    clip,
    quote,
)
from hivemesh.mesh.status import details_of, from_rpc_error, to_status
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub
from tests.security.errors_harness import PATHS, Served, details_bytes, serve, trailer_bytes

TRAILER_LIMIT = 6 * 1024
SCOPE = Scope(tenant_id="t1", user_id="ana", session_id="s1")


@pytest.fixture(params=PATHS)
async def served(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Served]:
    async with serve(settings, ["tool", "memory"], request.param) as running:
        yield running


async def test_a_3_mb_invalid_argument_comes_back_in_a_few_hundred_bytes(served: Served) -> None:
    expression = "(" * 1_500_000 + "1" + ")" * 1_500_000
    arguments = struct_pb2.Struct()
    arguments.update({"expression": expression})
    request = tool.InvokeToolRequest(tool_name="calculator", arguments=arguments, scope=SCOPE)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ToolServiceStub(served.channel("tool")).InvokeTool(request)
    status = details_of(raised.value)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "INVALID_TOOL_ARGUMENTS"
    assert status.metadata["field"] == "arguments.expression"
    # The verdict at the end survives the cut in the middle of the value.
    assert status.message.startswith("invalid arguments for calculator: arguments.expression: '((((")
    assert status.message.endswith("))))' is too long")
    assert "bytes cut" in status.message
    assert len(status.message.encode()) <= MESSAGE_LIMIT
    assert status.field_violations[0][0] == "arguments.expression"
    assert len(status.field_violations[0][1].encode()) <= DETAIL_LIMIT
    assert details_bytes(raised.value) <= STATUS_LIMIT
    assert trailer_bytes(raised.value) < TRAILER_LIMIT


async def test_a_record_value_of_the_wrong_type_is_quoted_once_and_short(served: Served) -> None:
    value = struct_pb2.Struct()
    value.update({"items": "x" * 60_000})  # within the 64 KiB a record may hold
    request = mem.PutRecordRequest(scope=SCOPE, kind="list", key="groceries", value=value)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await MemoryServiceStub(served.channel("memory")).PutRecord(request)
    status = details_of(raised.value)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "RECORD_SCHEMA_VIOLATION"
    assert status.message.startswith("value.items: 'xxx")
    assert status.message.endswith("xxx' is not of type 'array'")
    assert status.message.count("x") <= QUOTE_LIMIT
    assert status.field_violations == (("value.items", status.message.removeprefix("value.items: ")),)
    assert trailer_bytes(raised.value) < TRAILER_LIMIT


def test_every_part_of_a_status_is_bounded_and_the_whole_fits() -> None:
    huge = "x" * 1_000_000
    error = InvalidArgument(
        huge,
        violations=[FieldViolation(f"items[{i}].{huge}", huge) for i in range(100)],
        metadata={"field": "items[0]", **{f"{i}{huge}": huge for i in range(100)}},
        reason=huge,
    )
    status = to_status(error, "hivemesh.test")
    assert status.ByteSize() <= STATUS_LIMIT
    assert len(status.message.encode()) <= MESSAGE_LIMIT
    assert status.code == code_pb2.INVALID_ARGUMENT
    # What is dropped to fit is the tail: the first violation and the field stay.
    assert error.violations[0].field.startswith("items[0].")
    assert error.metadata["field"] == "items[0]"
    assert len(str(error)) <= MESSAGE_LIMIT  # what logs and task events quote


def test_clip_keeps_both_ends_and_never_splits_a_character() -> None:
    text = "é" * 1000 + "!"
    clipped = clip(text, 100)
    assert len(clipped.encode()) <= 100
    assert clipped.startswith("éé")
    assert clipped.endswith("é!")
    assert "bytes cut" in clipped
    assert clip("short", 100) == "short"
    assert clip("lone \udc80 surrogate", 100) == "lone \\udc80 surrogate"
    assert len(quote("y" * 10_000).encode()) <= 64


async def _raw_server(abort: Any) -> tuple[grpc.aio.Server, int]:
    """A plain gRPC server (no hivemesh interceptors) whose one method fails as ``abort`` does."""

    async def handler(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await abort(context)
        return b""

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "test.Raw", {"Fail": grpc.unary_unary_rpc_method_handler(handler)}
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def _details(code: int, message: str) -> tuple[tuple[str, bytes], ...]:
    status = status_pb2.Status(code=code, message=message)
    return (("grpc-status-details-bin", status.SerializeToString()),)


@pytest.mark.parametrize(
    ("case", "expected", "kind"),
    [
        # A server sending far more than the client takes: the client ends the call itself.
        ("oversized", grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
        ("other code", grpc.StatusCode.NOT_FOUND, NotFound),
        ("corrupt", grpc.StatusCode.OUT_OF_RANGE, OutOfRange),
    ],
)
async def test_a_status_whose_details_cannot_be_read_keeps_the_calls_own_code(
    case: str, expected: grpc.StatusCode, kind: type[Exception]
) -> None:
    async def abort(context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        if case == "oversized":
            big = "v" * 20_000
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, big, _details(code_pb2.INVALID_ARGUMENT, big)
            )
        elif case == "other code":
            await context.abort(
                grpc.StatusCode.NOT_FOUND, "gone", _details(code_pb2.INVALID_ARGUMENT, "gone")
            )
        else:
            await context.abort(
                grpc.StatusCode.OUT_OF_RANGE, "past the end", (("grpc-status-details-bin", b"\xff\x01"),)
            )

    server, port = await _raw_server(abort)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await channel.unary_unary(
                    "/test.Raw/Fail", request_serializer=None, response_deserializer=None
                )(b"")
    finally:
        await server.stop(0)
    status = details_of(raised.value)
    assert status.code == expected
    assert (status.reason, status.field_violations) == ("", ())
    error = from_rpc_error(raised.value)
    assert isinstance(error, kind)
    assert len(error.message.encode()) <= MESSAGE_LIMIT
