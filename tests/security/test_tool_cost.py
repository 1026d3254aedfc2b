"""A request cannot take the tool service down: each finding of the review, against the real service.

- A calculator power whose exact value has billions of digits is answered with a bounded result,
  fast, and the service answers health checks and other calls meanwhile.
- A computation that does run away is stopped at its tool's timeout: its worker process is killed.
- Nesting that would overflow the parser's stack, code passed as a unit, and a number that is not
  finite are INVALID_ARGUMENT naming the argument, logged in one line without a traceback.

"Meanwhile" is measured by a second client in its own thread (``Probe``): the service runs on this
test's event loop, whose clock stops when the loop is blocked.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hivemesh.mesh.config import Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer
from hivemesh.tool.app import build_app
from hivemesh.tool.config import ToolConfig
from hivemesh.tool.v1 import tool_service_pb2 as pb
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub
from tests.security.probe import Probe
from tests.support import credential_metadata, credentialed_channel, rpc_error
from tests.tool import cpu_tools
from tests.tool.fakes import InMemoryRecords, RecordingScheduler
from tests.tool.loop import gone
from tests.tool.serving import channels

if TYPE_CHECKING:
    from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceAsyncStub

T = TypeVar("T")
# What "answered quickly" means while a hostile call runs: generous for a busy machine, and far below
# what the hostile calls took before (never again; 4.7 s).
PROMPT_S = 1.0


def args(**values: Any) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def calculate(expression: str) -> pb.InvokeToolRequest:
    return pb.InvokeToolRequest(tool_name="calculator", arguments=args(expression=expression))


def spin(seconds: float) -> pb.InvokeToolRequest:
    return pb.InvokeToolRequest(tool_name="spin", arguments=args(seconds=seconds))


@dataclass
class Service:
    tool: ToolServiceAsyncStub
    address: str
    credential: tuple[tuple[str, str], ...]

    def probe(self, *, calculate_too: bool = True) -> Probe:
        """A health check, and a small calculation, again and again, from another client."""

        def ask(channel: grpc.Channel) -> None:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="liveness"), timeout=60
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            if calculate_too:
                assert ToolServiceStub(channel).InvokeTool(calculate("6 * 7"), timeout=60).display == "42"

        return Probe(self.address, ask, metadata=self.credential)


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    """The tool service with its built-ins, plus a tool that computes for as long as it is asked.
    One worker process, so that the probe's calculations share it with the hostile calls."""
    app = build_app(
        settings,
        channels(settings),
        ToolConfig(worker_processes=1),
        records=InMemoryRecords(),
        scheduler=RecordingScheduler(),
        extra_tools=cpu_tools.TOOLS,
    )
    server = MeshServer(app, settings.server, 0, Metrics())
    await server.start()
    address = f"127.0.0.1:{server.port}"
    channel = credentialed_channel(address, settings)
    try:
        yield Service(ToolServiceStub(channel), address, credential_metadata(settings))
    finally:
        await channel.close(None)
        await server.stop(1.0)


async def timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    started = time.monotonic()
    result = await awaitable
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        # Was: the tool process pinned for good (the check on the base's logarithm saw 0).
        ("1.00000000000000000001^1000000000", 1.00000000001),
        # Was: 4.7 s on the event loop, past the 2 s timeout, which could not fire.
        ("1.0001^1000000", math.exp(1000000 * math.log1p(1e-4))),
    ],
)
async def test_a_huge_power_gets_a_bounded_answer_while_the_service_answers_others(
    service: Service, expression: str, value: float
) -> None:
    await service.tool.InvokeTool(calculate("1 + 1"))  # the worker process is up
    async with service.probe() as probe:
        reply, hostile_s = await timed(service.tool.InvokeTool(calculate(expression), timeout=30))
    assert reply.result["value"] == pytest.approx(value, rel=1e-12)
    assert hostile_s < PROMPT_S
    assert not probe.failures
    assert probe.worst_s < PROMPT_S


async def test_a_runaway_computation_is_stopped_at_its_timeout(service: Service) -> None:
    before = int((await service.tool.InvokeTool(spin(0))).display)
    async with service.probe(calculate_too=False) as probe:
        error, runaway_s = await timed(rpc_error(service.tool.InvokeTool(spin(600))))
    assert (error.code, error.reason, error.metadata["timeout_s"]) == (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "TOOL_TIMEOUT",
        "1",
    )
    assert 0.9 < runaway_s < 5.0
    # Health was answered all along.
    assert not probe.failures
    assert len(probe.took) >= 10
    assert probe.worst_s < PROMPT_S
    assert gone(before), "the worker process computing past its timeout was not killed"
    # A fresh process took the killed one's place.
    after, after_s = await timed(service.tool.InvokeTool(spin(0)))
    assert int(after.display) != before
    assert after_s < PROMPT_S


def one_line_about(caplog: pytest.LogCaptureFixture, field: str) -> None:
    lines = [r for r in caplog.records if r.name.startswith("hivemesh") and r.levelno >= logging.INFO]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].exc_info is None
    assert field in lines[0].getMessage()


@pytest.mark.parametrize(
    ("request_", "field", "reason"),
    [
        # Was FAILED_PRECONDITION: a RecursionError in the parser.
        (calculate("(" * 256), "arguments.expression", "EXPRESSION_TOO_DEEP"),
        # Was FAILED_PRECONDITION: an AssertionError inside pint's parser.
        (
            pb.InvokeToolRequest(
                tool_name="convert_units", arguments=args(value=1, from_unit="__import__('os')", to_unit="m")
            ),
            "arguments.from_unit",
            "UNKNOWN_UNIT",
        ),
    ],
)
async def test_a_malformed_argument_is_an_invalid_argument_logged_in_one_line(
    service: Service,
    caplog: pytest.LogCaptureFixture,
    request_: pb.InvokeToolRequest,
    field: str,
    reason: str,
) -> None:
    await service.tool.InvokeTool(calculate("1 + 1"))  # the worker process is up
    caplog.clear()
    caplog.set_level(logging.INFO)
    error = await rpc_error(service.tool.InvokeTool(request_))
    assert (error.code, error.reason, error.metadata["field"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
        field,
    )
    assert [path for path, _ in error.field_violations] == [field]
    one_line_about(caplog, field)


async def drain(stream: AsyncIterable[Any]) -> None:
    async for _ in stream:
        pass


async def test_a_number_that_is_not_finite_is_an_invalid_argument(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for bad in (math.nan, math.inf, -math.inf):
        arguments = args(value=bad, from_unit="m", to_unit="km")
        caplog.clear()
        # Was INTERNAL: the arguments could not be turned into JSON.
        unary = await rpc_error(
            service.tool.InvokeTool(pb.InvokeToolRequest(tool_name="convert_units", arguments=arguments))
        )
        one_line_about(caplog, "arguments.value")
        streamed = await rpc_error(
            drain(
                service.tool.InvokeToolStream(
                    pb.InvokeToolStreamRequest(tool_name="convert_units", arguments=arguments)
                )
            )
        )
        for error in (unary, streamed):
            assert (error.code, error.reason, error.metadata["field"]) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_TOOL_ARGUMENTS",
                "arguments.value",
            )
            assert error.field_violations == (("arguments.value", f"must be a finite number, not {bad}"),)
