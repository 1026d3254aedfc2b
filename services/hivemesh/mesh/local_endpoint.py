"""The in-process side door of a MeshServer: calls from the same process reach the same handlers
through the same server interceptors as calls that arrive over HTTP/2, minus the transport.

One call is an ``Exchange``: the serialized request goes in; the handler runs in a task of its own,
started with an empty context, so it sees its caller only through metadata, as over the network;
serialized responses and the final status come out. The caller's deadline, its cancellation and the
server's shutdown reach the handler as the cancellation of that task, as under grpc.aio.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeAlias, cast

import grpc

from hivemesh.mesh.errors import MESSAGE_LIMIT, clip

_log = logging.getLogger(__name__)

# What the handler sees as its peer and user agent: the transport is the process itself.
PEER = "inproc:localhost:0"
USER_AGENT = f"hivemesh-in-process grpc-python/{grpc.__version__}"

# Responses a streaming handler may run ahead of its reader (HTTP/2 flow control plays this part
# over the network): enough to keep both sides busy, small enough to bound the memory per call.
STREAM_BUFFER = 32

UNAVAILABLE_CLOSED = "the server is not serving"
UNAVAILABLE_SHUTDOWN = "Cancelling all calls"  # grpc's words when a stopping server cancels a call
LIMIT_EXCEEDED = "Concurrent RPC limit exceeded!"  # grpc's words, so callers see the same status

if TYPE_CHECKING:
    _ServicerContext = grpc.aio.ServicerContext[Any, Any]
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
    _MethodHandler = grpc.RpcMethodHandler[Any, Any]
    _GenericHandler = grpc.GenericRpcHandler[Any, Any]
else:  # generic in the stubs only
    _ServicerContext = grpc.aio.ServicerContext
    _ServerInterceptor = grpc.aio.ServerInterceptor
    _MethodHandler = grpc.RpcMethodHandler
    _GenericHandler = grpc.GenericRpcHandler

_Resolver: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable["_MethodHandler | None"]]


class Metadatum(NamedTuple):
    """One metadata entry, shaped as grpc hands them to servers (a pair with ``key`` and ``value``)."""

    key: str
    value: str | bytes


@dataclass(frozen=True)
class Status:
    """How a call ended, as its caller learns it."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[Metadatum, ...] = ()


OK = Status(grpc.StatusCode.OK, "")


@dataclass(frozen=True)
class _CallDetails(grpc.HandlerCallDetails):
    method: str
    invocation_metadata: tuple[Metadatum, ...]


class Exchange:
    """One in-process call: the request in, responses and a final status out.

    The handler side calls ``reply``/``send`` and ``finish``; the caller side ``receive``s, waits
    and ``terminate``s (deadline, cancellation, shutdown). The first final status wins.
    """

    def __init__(
        self,
        method: str,
        request: bytes,
        metadata: tuple[Metadatum, ...],
        deadline: float | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.method = method
        self.request = request
        self.metadata = metadata
        # Absolute, on the event loop's clock.
        self.deadline = deadline
        self.status: Status | None = None
        self.response: bytes | None = None
        self.initial_metadata: tuple[Metadatum, ...] = ()
        self.terminated = False
        self._loop = loop
        self._responses: deque[bytes] = deque()
        self._reader: asyncio.Future[None] | None = None
        self._writer: asyncio.Future[None] | None = None
        self._callbacks: list[Callable[[Exchange], None]] = []
        self.task: asyncio.Task[None] | None = None

    # ---- the handler's side

    def reply(self, response: bytes) -> None:
        """The response of a unary call, then OK."""
        self.response = response
        self.finish(OK)

    async def send(self, response: bytes) -> None:
        """One response of a stream; waits while the caller is ``STREAM_BUFFER`` responses behind.
        Once the call has ended (the caller left, the deadline passed) the handler is stopped here,
        even one that never waits for anything else."""
        while len(self._responses) >= STREAM_BUFFER and self.status is None:
            self._writer = self._loop.create_future()
            await self._writer
        if self.status is not None:
            raise asyncio.CancelledError
        self._responses.append(response)
        _wake(self._reader)

    def send_initial_metadata(self, metadata: tuple[Metadatum, ...]) -> None:
        self.initial_metadata = metadata

    def finish(self, status: Status) -> None:
        if self.status is not None:
            return
        self.status = status
        _wake(self._reader)
        _wake(self._writer)
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    # ---- the caller's side

    def terminate(self, status: Status) -> None:
        """End the call from outside the handler (deadline, cancellation, shutdown): the caller sees
        ``status`` and the handler's task is cancelled."""
        if self.status is not None:
            return
        self.terminated = True
        self._responses.clear()  # what the caller will never read
        self.finish(status)
        if self.task is not None:
            self.task.cancel()

    async def receive(self) -> bytes | None:
        """The next response of a stream, or None once it has ended (see ``status``)."""
        while not self._responses:
            if self.status is not None:
                return None
            self._reader = self._loop.create_future()
            await self._reader
        response = self._responses.popleft()
        _wake(self._writer)
        return response

    def add_done_callback(self, callback: Callable[[Exchange], None]) -> None:
        """Run ``callback`` once the status is known (at once if it already is)."""
        if self.status is not None:
            callback(self)
        else:
            self._callbacks.append(callback)

    async def wait(self) -> Status:
        if self.status is None:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self.add_done_callback(lambda _: _wake(waiter))
            await waiter
        assert self.status is not None
        return self.status

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - self._loop.time())


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class LocalServicerContext(_ServicerContext):
    """What a handler sees of an in-process call: the grpc.aio ServicerContext contract."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._code: grpc.StatusCode | None = None
        self._details: str | None = None
        self._trailing: tuple[Metadatum, ...] = ()
        self._aborted = False
        # Set for response-streaming calls, whose handlers may ``write`` instead of yielding.
        self.serializer: Callable[[Any], bytes] | None = None
        self._callbacks: list[Callable[[Any], None]] = []

    def status(self) -> Status:
        code = self._code or grpc.StatusCode.OK
        return Status(code, self._details or "", self._trailing)

    def invocation_metadata(self) -> tuple[Metadatum, ...]:  # type: ignore[override]  # grpc passes a tuple of pairs
        return self._exchange.metadata

    def time_remaining(self) -> float | None:  # type: ignore[override]  # None without a deadline, as grpc.aio does
        return self._exchange.remaining()

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Any = (),
    ) -> NoReturn:
        if self._aborted:
            raise grpc.aio.UsageError("Abort already called!")
        self._aborted = True
        if code == grpc.StatusCode.OK:
            _log.error("abort() called with StatusCode.OK; the caller sees UNKNOWN")
            code = grpc.StatusCode.UNKNOWN
        self._code, self._details = code, details
        self._trailing = metadata_tuple(trailing_metadata)
        raise grpc.aio.AbortError

    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        await self.abort(status.code, status.details, status.trailing_metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:  # type: ignore[override]  # None until set, as grpc.aio does
        return self._code

    def details(self) -> str | None:  # type: ignore[override]  # None until set, as grpc.aio does
        return self._details

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        self._trailing = metadata_tuple(trailing_metadata)

    def trailing_metadata(self) -> tuple[Metadatum, ...]:  # type: ignore[override]  # as set
        return self._trailing

    async def send_initial_metadata(self, initial_metadata: Any) -> None:
        self._exchange.send_initial_metadata(metadata_tuple(initial_metadata))

    async def read(self) -> NoReturn:
        raise grpc.aio.UsageError("read() is for request-streaming calls")

    async def write(self, message: Any) -> None:
        if self.serializer is None:
            raise grpc.aio.UsageError("write() is for response-streaming calls")
        await self._exchange.send(self.serializer(message))

    def set_compression(self, compression: grpc.Compression) -> None:
        return None  # nothing is compressed in-process

    def disable_next_message_compression(self) -> None:
        return None

    def peer(self) -> str:
        return PEER

    def peer_identities(self) -> None:
        return None

    def peer_identity_key(self) -> None:
        return None

    def auth_context(self) -> Mapping[str, Iterable[bytes]]:
        return {}

    def add_done_callback(self, callback: Any) -> None:
        self._exchange.add_done_callback(lambda _: callback(self))

    def cancelled(self) -> bool:
        return self._exchange.terminated

    def done(self) -> bool:
        return self._exchange.status is not None


def metadata_tuple(metadata: Any) -> tuple[Metadatum, ...]:
    """Metadata as a tuple of ``Metadatum`` (from grpc.aio.Metadata or a sequence of pairs)."""
    if not metadata:
        return ()
    return tuple(Metadatum(str(key), value) for key, value in metadata)


class _Registrar(grpc.aio.Server):
    """Stands in for the gRPC server while an app registers its servicers: every handler goes to the
    real server and is kept for in-process calls too."""

    def __init__(self, server: grpc.aio.Server, endpoint: LocalEndpoint) -> None:
        self._server = server
        self._endpoint = endpoint

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[_GenericHandler]) -> None:
        handlers = tuple(generic_rpc_handlers)
        self._endpoint.add_generic_handlers(handlers)
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Mapping[str, Any]) -> None:
        self._endpoint.add_method_handlers(service_name, method_handlers)
        register = getattr(self._server, "add_registered_method_handlers", None)
        if register is not None:
            register(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self._server.add_secure_port(address, server_credentials)

    async def start(self) -> None:
        await self._server.start()

    async def stop(self, grace: float | None = None) -> None:
        await self._server.stop(grace)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - grpc's signature
        return await self._server.wait_for_termination(timeout)


class LocalEndpoint:
    """Serves one service's handlers to callers in this process, behind ``interceptors`` (the same
    instances the gRPC server runs), while it is open."""

    def __init__(
        self, service: str, interceptors: Sequence[_ServerInterceptor], *, max_concurrent_rpcs: int
    ) -> None:
        self.service = service
        self._max_concurrent = max_concurrent_rpcs
        self._methods: dict[str, _MethodHandler] = {}
        self._generic: list[_GenericHandler] = []
        self._in_flight: set[Exchange] = set()
        self._open = False
        # Replaced on every change of ``serving``; waiters of the old one wake up.
        self._state = asyncio.Event()
        # The interceptor chain, outermost first, ending in the handler lookup, as grpc.aio runs it.
        resolve: _Resolver = self._lookup
        for interceptor in reversed(interceptors):
            # A continuation may find no handler (None), whatever the stubs say.
            resolve = functools.partial(interceptor.intercept_service, cast("Any", resolve))
        self._resolve = resolve

    # ---- registration

    def registering(self, server: grpc.aio.Server) -> grpc.aio.Server:
        """What to hand to ``ServiceApp.register`` (and health, reflection) instead of ``server``."""
        return _Registrar(server, self)

    def add_generic_handlers(self, handlers: Iterable[_GenericHandler]) -> None:
        self._generic.extend(handlers)

    def add_method_handlers(self, service_name: str, handlers: Mapping[str, _MethodHandler]) -> None:
        for name, handler in handlers.items():
            self._methods[f"/{service_name}/{name}"] = handler

    async def _lookup(self, details: grpc.HandlerCallDetails) -> _MethodHandler | None:
        handler = self._methods.get(details.method)
        if handler is not None:
            return handler
        for generic in self._generic:
            found = generic.service(details)
            if found is not None:
                return found
        return None

    # ---- serving

    @property
    def serving(self) -> bool:
        return self._open

    def open(self) -> None:
        self._open = True
        self._changed()

    async def close(self, grace: float | None) -> None:
        """Refuse new calls at once; calls in flight get ``grace`` seconds, then are cancelled (their
        callers see UNAVAILABLE, as from a gRPC server that stops)."""
        self._open = False
        self._changed()
        if self._in_flight and grace:
            waiters = [asyncio.ensure_future(e.wait()) for e in self._in_flight]
            _, pending = await asyncio.wait(waiters, timeout=grace)
            for waiter in pending:
                waiter.cancel()
        tasks = [e.task for e in self._in_flight if e.task is not None]
        for exchange in list(self._in_flight):
            exchange.terminate(Status(grpc.StatusCode.UNAVAILABLE, UNAVAILABLE_SHUTDOWN))
        if tasks:
            # Let the handlers run their cleanup (metrics, spans) before the server is reported stopped.
            await asyncio.wait(tasks, timeout=1.0)

    async def wait_serving(self) -> None:
        while not self._open:
            await self._state.wait()

    async def wait_changed(self) -> None:
        await self._state.wait()

    def _changed(self) -> None:
        self._state.set()
        self._state = asyncio.Event()

    def start(
        self,
        method: str,
        request: bytes,
        metadata: tuple[Metadatum, ...],
        deadline: float | None,
        *,
        wait_for_ready: bool = False,
    ) -> Exchange:
        """Begin a call; the returned exchange may already carry its final status (not serving,
        over the concurrency limit)."""
        loop = asyncio.get_running_loop()
        exchange = Exchange(method, request, metadata, deadline, loop)
        waiting = not self._open
        if waiting and not wait_for_ready:
            exchange.finish(Status(grpc.StatusCode.UNAVAILABLE, UNAVAILABLE_CLOSED))
            return exchange
        if len(self._in_flight) >= self._max_concurrent:
            exchange.finish(Status(grpc.StatusCode.RESOURCE_EXHAUSTED, LIMIT_EXCEEDED))
            return exchange
        self._in_flight.add(exchange)
        exchange.add_done_callback(self._in_flight.discard)
        # An empty context: the handler inherits nothing from its caller but what metadata carries.
        exchange.task = loop.create_task(self._serve(exchange, waiting), context=contextvars.Context())
        return exchange

    async def _serve(self, exchange: Exchange, waiting: bool) -> None:
        if waiting:  # a caller that waits for the server to be ready
            await self.wait_serving()
        context = LocalServicerContext(exchange)
        try:
            handler = await self._resolve(_CallDetails(exchange.method, exchange.metadata))
            if handler is None:
                exchange.finish(Status(grpc.StatusCode.UNIMPLEMENTED, "Method not found!"))
                return
            request = _decode(handler.request_deserializer, exchange.request)
            if handler.unary_unary is not None:
                response = await cast("Callable[..., Awaitable[Any]]", handler.unary_unary)(request, context)
                status = context.status()
                if status.code == grpc.StatusCode.OK:
                    exchange.reply(_encode(handler.response_serializer, response))
                else:
                    exchange.finish(status)
            elif handler.unary_stream is not None:
                serializer = handler.response_serializer
                context.serializer = serializer
                produced = cast("Callable[..., Any]", handler.unary_stream)(request, context)
                if isinstance(produced, AsyncGenerator):
                    try:
                        async for item in produced:
                            await exchange.send(_encode(serializer, item))
                    finally:
                        # Stopped early, the handler's cleanup (its metrics, its span) runs now.
                        await produced.aclose()
                else:  # a handler that writes through the context
                    await produced
                exchange.finish(context.status())
            else:
                exchange.finish(
                    Status(grpc.StatusCode.UNIMPLEMENTED, "request-streaming calls are not served in-process")
                )
        except grpc.aio.AbortError:
            exchange.finish(context.status())
        except asyncio.CancelledError:
            exchange.finish(Status(grpc.StatusCode.CANCELLED, "the handler was cancelled"))
            raise
        except Exception as exc:
            # grpc.aio's answer to an exception that no interceptor turned into a status.
            _log.exception("unexpected error in %s", exchange.method)
            text = clip(f"Unexpected {type(exc)}: {exc}", MESSAGE_LIMIT)
            exchange.finish(Status(grpc.StatusCode.UNKNOWN, text))


def _decode(deserializer: Callable[[bytes], Any] | None, data: bytes) -> Any:
    return data if deserializer is None else deserializer(data)


def _encode(serializer: Callable[[Any], bytes] | None, message: Any) -> bytes:
    return cast("bytes", message) if serializer is None else serializer(message)
