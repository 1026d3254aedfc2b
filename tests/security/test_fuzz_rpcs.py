"""Every RPC of every service, fuzzed over real gRPC: whatever a client sends, the answer is a status
it can act on, never UNKNOWN, INTERNAL or DATA_LOSS, within the call's deadline, and every service
still serves afterwards.

The five services run in this process on their embedded defaults, the gateway requiring an API key.
The methods come from the service descriptors, and each request from hypothesis strategies derived
from its message descriptor (``fuzz_requests``): valid requests naming what the mesh holds, requests
past the contract's rules, and bytes no client library writes, sent through a generic channel so
that undecodable bytes reach the server as they are. ``HIVEMESH_FUZZ_EXAMPLES`` sets the requests
per method (runs are reproducible; ``HIVEMESH_FUZZ_SEED`` explores other ones).
"""

from __future__ import annotations

import asyncio
import logging
import os
import string
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.gateway.app import key_store
from hivemesh.gateway.auth import API_KEY_HEADER
from hivemesh.gateway.v1 import gateway_service_pb2 as gw
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.memory.v1 import memory_service_pb2 as mem
from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub
from hivemesh.mesh.config import SERVICES, Settings
from hivemesh.mesh.contracts import CONTRACTS
from hivemesh.tool.v1 import tool_service_pb2 as tl
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub
from tests.security.fuzz_requests import Payload, Requests, Vocabulary, schema_values
from tests.support import RunningMesh, credential_metadata, make_settings, start_mesh

EXAMPLES = int(os.environ.get("HIVEMESH_FUZZ_EXAMPLES", "100"))
SEED = os.environ.get("HIVEMESH_FUZZ_SEED")
# Longer than any call of these services takes: a call that needs all of it has hung.
CALL_DEADLINE_S = 5.0
# A server stream is read for at most this long and this many messages, then closed by the client.
STREAM_WINDOW_S = 1.0
STREAM_MESSAGES = 3
# What a service answers when it failed, rather than the caller: never the answer to a request.
NEVER = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS})

CREDENTIAL_HEADER = "x-hivemesh-credential"
# Metadata the services read besides credentials: the request id and the W3C trace context.
READ_METADATA = ("x-request-id", "traceparent", "tracestate", "baggage")
TENANT = "fuzz"
UTTERANCES = (
    "what is 12 * (3 + 4)?",
    "convert 5 miles to km",
    "remember that my sister's name is Ana",
    "what's my sister's name?",
    "roll two dice",
    "what time is it in Tokyo?",
    "add milk and eggs to my shopping list",
    "what day of the week is 2026-11-26?",
)
METHODS = [
    pytest.param(name, method, id=f"{name}.{method.name}")
    for name, contract in CONTRACTS.items()
    for method in contract.descriptor.methods
]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60 + 4 * EXAMPLES)]

_R = TypeVar("_R")


def internal_metadata(mesh: RunningMesh, user: str) -> list[tuple[str, str]]:
    """The metadata a service of ``mesh`` sends with its calls to an internal service (planner,
    language, memory, tool) acting for ``user`` of the fuzzed tenant: the mesh credential, as the
    gateway signs it for a task. Every call of this module to one of them takes it from here."""
    return list(credential_metadata(mesh.settings, TENANT, user))


@dataclass(frozen=True)
class Caller:
    """Who calls: a name for the report and the metadata sent."""

    name: str
    metadata: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        others = [key for key, _ in self.metadata if key not in (API_KEY_HEADER, CREDENTIAL_HEADER)]
        return f"{self.name}, with {', '.join(others)}" if others else self.name


def callers(service: str, mesh: RunningMesh, api_key: str) -> st.SearchStrategy[Caller]:
    """The gateway's callers hold an API key. An internal service is called with the mesh's own
    credential, with none, and with one made up. Any caller may add the metadata the services read
    besides (a request id, a trace context), with any value a client can send."""
    printable = st.text(alphabet=[chr(c) for c in range(0x20, 0x7F)], max_size=64)
    value = st.one_of(printable, st.builds(lambda n: "x" * n, st.sampled_from([1024, 7000])))
    extra = st.lists(st.tuples(st.sampled_from(READ_METADATA), value), max_size=2).map(tuple)
    if service == "gateway":
        who = st.just(Caller("API key", ((API_KEY_HEADER, api_key),)))
    else:
        garbage = st.text(alphabet=string.ascii_letters + string.digits + "-._~+/=", max_size=300)
        who = st.one_of(
            st.just(Caller("mesh credential of ana", tuple(internal_metadata(mesh, "ana")))),
            st.just(Caller("mesh credential of bo", tuple(internal_metadata(mesh, "bo")))),
            st.just(Caller("no credential", ())),
            garbage.map(lambda text: Caller("made-up credential", ((CREDENTIAL_HEADER, text),))),
        )
    return st.builds(lambda caller, more: Caller(caller.name, caller.metadata + more), who, extra)


class MeshThread:
    """An event loop on a thread of its own, for the services: the fuzzer calls them from the
    test's thread, so a service that stalls its loop shows as calls that run out of time."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="mesh", daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, _R], timeout_s: float = 60.0) -> _R:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout_s)

    def close(self) -> None:
        self.run(_cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


async def _cancel_the_rest() -> None:
    rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


class Failures(logging.Handler):
    """What the services log at ERROR, and asyncio too (a task's exception nobody retrieved): a
    service that failed inside has a bug, whatever its caller was answered."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self._loggers = [logging.getLogger("hivemesh"), logging.getLogger("asyncio")]

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> Failures:
        for logger in self._loggers:
            logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger in self._loggers:
            logger.removeHandler(self)

    def since(self, start: int) -> list[str]:
        return [_described(record) for record in self.records[start:]]


def _described(record: logging.LogRecord) -> str:
    text = f"{record.name}: {record.getMessage()[:300]}"
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        text += f" ({type(error).__name__}: {str(error)[:300]})"
    return text


@dataclass
class Target:
    """The mesh under fuzzing, a plain channel to each service, requests for its methods, and what
    its services logged as failures."""

    mesh: RunningMesh
    channels: dict[str, grpc.Channel]
    api_key: str
    requests: Requests
    failures: Failures


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode
    details: str
    took_s: float
    # A server stream the client closed itself, once it had read enough or waited long enough.
    closed_by_client: bool = False


def call(channel: grpc.Channel, method: MethodDescriptor, path: str, data: bytes, caller: Caller) -> Answer:
    """Send ``data`` as it is (no serializer) and wait for the answer, within the deadline."""
    started = time.monotonic()
    closed = threading.Event()
    timer: threading.Timer | None = None
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, request_serializer=None, response_deserializer=None)(
                data, timeout=CALL_DEADLINE_S, metadata=caller.metadata
            )

            def close() -> None:
                closed.set()
                stream.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs

            timer = threading.Timer(STREAM_WINDOW_S, close)
            timer.start()
            for count, _ in enumerate(stream, 1):
                if count >= STREAM_MESSAGES:
                    close()
                    break
        else:
            channel.unary_unary(path, request_serializer=None, response_deserializer=None)(
                data, timeout=CALL_DEADLINE_S, metadata=caller.metadata
            )
    except grpc.RpcError as error:
        failed = cast("grpc.Call", error)  # what a call raises is its grpc.Call as well
        return Answer(failed.code(), failed.details() or "", time.monotonic() - started, closed.is_set())
    finally:
        if timer is not None:
            timer.cancel()
    return Answer(grpc.StatusCode.OK, "", time.monotonic() - started, closed.is_set())


def problem(answer: Answer) -> str | None:
    """What is wrong with ``answer``, if anything."""
    if answer.code in NEVER:
        return f"{answer.code.name}: {answer.details[:300]!r}"
    if answer.took_s >= CALL_DEADLINE_S * 0.9 and not answer.closed_by_client:
        return f"{answer.code.name} after {answer.took_s:.1f} s: no answer within the deadline"
    return None


def serving(channel: grpc.Channel, service: str) -> bool:
    """Whether Health answers SERVING for ``service`` within a second."""
    check = health_pb2_grpc.HealthStub(channel).Check
    response = check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


async def _api_key(settings: Settings) -> str:
    store = key_store(settings)
    await store.start()
    try:
        return (await store.create(TENANT, name="fuzzing"))[1]
    finally:
        await store.stop(0)


def vocabulary(channels: dict[str, grpc.Channel], api_key: str, mesh: RunningMesh) -> Vocabulary:
    """What the mesh holds once a few ordinary calls have been made: a task of each kind, a memory,
    a record, the tools and their arguments, a page token of each list."""
    key = ((API_KEY_HEADER, api_key),)
    internal = tuple(internal_metadata(mesh, "ana"))
    scope = Scope(tenant_id=TENANT, user_id="ana", session_id="s1")
    gateway = GatewayServiceStub(channels["gateway"])
    task_ids = [
        gateway.SubmitTask(
            gw.SubmitTaskRequest(request_id=f"seed-{i}", text=text, scope=scope), metadata=key, timeout=5
        ).task.task_id
        for i, text in enumerate(UTTERANCES[:3])
    ]
    # A task that ran to its answer, and tasks waiting for an answer of their own (INPUT_REQUIRED).
    finished = [
        response.event.task_id
        for i, text in enumerate((UTTERANCES[0], "convert 10 miles", "convert 3 kg"))
        for response in gateway.ExecuteTask(
            gw.ExecuteTaskRequest(request_id=f"seed-run-{i}", text=text, scope=scope),
            metadata=key,
            timeout=30,
        )
    ]
    tasks_page = gateway.ListTasks(gw.ListTasksRequest(page_size=1), metadata=key, timeout=5)
    memory = MemoryServiceStub(channels["memory"])
    remembered = memory.Remember(
        mem.RememberRequest(scope=scope, text="my sister's name is Ana", metadata={"topic": "family"}),
        metadata=internal,
        timeout=5,
    )
    value = struct_pb2.Struct()
    value.update({"name": "Ana", "age": 7})
    for name in ("ana", "bo"):
        record = mem.PutRecordRequest(scope=scope, kind="profile", key=name, value=value)
        memory.PutRecord(record, metadata=internal, timeout=5)
    records_page = memory.ListRecords(
        mem.ListRecordsRequest(scope=scope, kind="profile", page_size=1), metadata=internal, timeout=5
    )
    tools = ToolServiceStub(channels["tool"])
    catalogue = tools.ListTools(tl.ListToolsRequest(), metadata=internal, timeout=5)
    tools_page = tools.ListTools(tl.ListToolsRequest(page_size=1), metadata=internal, timeout=5)
    schemas = {spec.name: json_format.MessageToDict(spec.arguments_schema) for spec in catalogue.tools}
    names = sorted(schemas)
    return Vocabulary(
        strings={
            "tenant_id": (TENANT,),
            "user_id": ("ana", "bo"),
            "session_id": ("s1", "s2"),
            "task_id": tuple(dict.fromkeys(task_ids + finished)),
            "memory_id": (remembered.memory.memory_id,),
            "kind": ("profile",),
            "key": ("ana", "bo"),
            "text": UTTERANCES,
            "content": UTTERANCES,
            "texts": UTTERANCES,
            "tool_name": names,
            "available_tools": names,
            "available_intents": tuple(sorted({b.intent for spec in catalogue.tools for b in spec.intents})),
            "cached_catalogue_version": (catalogue.catalogue_version,),
            "hivemesh.gateway.v1.ListTasksRequest.page_token": (tasks_page.next_page_token,),
            "hivemesh.memory.v1.ListRecordsRequest.page_token": (records_page.next_page_token,),
            "hivemesh.tool.v1.ListToolsRequest.page_token": (tools_page.next_page_token,),
        },
        tools={name: schema_values(schema) for name, schema in schemas.items()},
        keys=sorted({key for schema in schemas.values() for key in schema.get("properties", {})}),
    )


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    settings = make_settings(tmp_path_factory.mktemp("fuzz") / "data")
    thread = MeshThread()
    try:
        api_key = thread.run(_api_key(settings))
        # The gateway reads these when it is built: credentials required, no rate limit to hide
        # behind.
        with pytest.MonkeyPatch.context() as env:
            env.setenv("HIVEMESH_AUTH", "required")
            env.setenv("HIVEMESH_RATE_LIMIT", "0")
            mesh = thread.run(start_mesh(settings))
        channels = {name: grpc.insecure_channel(mesh.address(name)) for name in SERVICES}
        try:
            with Failures() as failures:
                requests = Requests(vocabulary(channels, api_key, mesh))
                yield Target(mesh, channels, api_key, requests, failures)
        finally:
            for channel in channels.values():
                channel.close()
            thread.run(mesh.stop())
    finally:
        thread.close()


def _fuzzing_settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        # The report names the request; shrinking it would cost a deadline per hanging attempt.
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        print_blob=False,
    )


@pytest.mark.parametrize(("service", "method"), METHODS)
def test_every_request_gets_a_client_status_in_time(
    target: Target, service: str, method: MethodDescriptor
) -> None:
    contract = CONTRACTS[service]
    path = f"/{contract.full_name}/{method.name}"
    channel = target.channels[service]

    @_fuzzing_settings()
    @given(
        payload=target.requests.payloads(method.input_type),
        caller=callers(service, target.mesh, target.api_key),
    )
    def fuzz(payload: Payload, caller: Caller) -> None:
        logged = len(target.failures.records)
        answer = call(channel, method, path, payload.data, caller)
        found = problem(answer)
        assert found is None, f"{path} ({caller}) answered {found}\n  to {payload.describe()}"
        failed = target.failures.since(logged)
        assert not failed, f"{path} ({caller}) failed inside: {failed}\n  on {payload.describe()}"

    if SEED is not None:
        fuzz = seed(int(SEED))(fuzz)
    logged = len(target.failures.records)
    fuzz()
    assert serving(channel, contract.full_name), f"{service} stopped serving"
    # Failures logged once the last answer was in, by work the requests left behind.
    assert not target.failures.since(logged), target.failures.since(logged)


def test_every_service_still_serves_and_never_failed_inside(target: Target) -> None:
    for service, contract in CONTRACTS.items():
        for name in ("", contract.full_name):
            assert serving(target.channels[service], name), f"{service} ({name or 'overall'})"
    assert not target.failures.since(0), target.failures.since(0)
