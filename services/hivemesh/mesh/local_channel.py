"""A grpc.aio channel to a service in the same process (``LocalEndpoint``), without HTTP/2.

Generated stubs take it as they take any channel. A call keeps the gRPC contract: the client
interceptors run as on a gRPC channel (tracing, request id, deadline); the request is serialized and
the handler gets its own copy, so caller and callee never share a mutable message; the timeout
becomes the handler's time remaining and, when it runs out, cancels the handler; cancelling the call
cancels the handler; a failed call raises ``grpc.aio.AioRpcError`` with the code, details and
trailing metadata (the rich status) the server set; idempotent unary calls are retried on
UNAVAILABLE with the channel's retry policy; message size limits apply. Unary and server-streaming
calls are carried; services with request-streaming methods are reached over gRPC instead.
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Generator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import grpc

from hivemesh.mesh.local_endpoint import (
    USER_AGENT,
    Exchange,
    LocalEndpoint,
    Metadatum,
    Status,
    metadata_tuple,
)
from hivemesh.mesh.retries import RetryBudget, RetryPolicy

if TYPE_CHECKING:
    _UnaryUnaryCall = grpc.aio.UnaryUnaryCall[Any, Any]
    _UnaryStreamCall = grpc.aio.UnaryStreamCall[Any, Any]
    _UnaryUnaryMultiCallable = grpc.aio.UnaryUnaryMultiCallable[Any, Any]
    _UnaryStreamMultiCallable = grpc.aio.UnaryStreamMultiCallable[Any, Any]
else:  # generic in the stubs only
    _UnaryUnaryCall = grpc.aio.UnaryUnaryCall
    _UnaryStreamCall = grpc.aio.UnaryStreamCall
    _UnaryUnaryMultiCallable = grpc.aio.UnaryUnaryMultiCallable
    _UnaryStreamMultiCallable = grpc.aio.UnaryStreamMultiCallable

Serializer = Callable[[Any], bytes]
Deserializer = Callable[[bytes], Any]

# grpc's words for these endings, so logs and error messages read the same on both paths.
_LOCAL_CANCELLATION = "Locally cancelled by application!"
_GC_CANCELLATION = "Cancelled upon garbage collection!"
_DEADLINE = Status(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
_CHANNEL_CLOSED = Status(grpc.StatusCode.CANCELLED, "the channel was closed")
_LEGAL_KEY = re.compile(r"[0-9a-z_.\-]+")
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from the stubs


class _Call(Protocol):
    """What the channel needs of a call in flight to close: an in-process call's attempts or exchange."""

    status: Status | None

    def terminate(self, status: Status) -> None: ...

    async def wait(self) -> Status: ...


class LocalChannel(grpc.aio.Channel):
    """Calls ``endpoint`` in-process through ``interceptors`` (the ones a gRPC channel would run)."""

    def __init__(
        self,
        endpoint: LocalEndpoint,
        *,
        interceptors: Sequence[object] = (),
        max_message_bytes: int,
        retry: RetryPolicy | None,
        retryable_methods: Collection[str] = (),
    ) -> None:
        self.endpoint = endpoint
        self.max_message_bytes = max_message_bytes
        self.retry = retry
        self.retryable = frozenset(retryable_methods)
        self.budget = RetryBudget(retry) if retry is not None else None
        self.rng = random.Random()  # noqa: S311 - backoff jitter, not a secret
        self._unary: list[grpc.aio.UnaryUnaryClientInterceptor[Any, Any]] = []
        self._stream: list[grpc.aio.UnaryStreamClientInterceptor[Any, Any]] = []
        for interceptor in interceptors:
            # grpc.aio.Channel files an interceptor under its first matching kind only; so does this
            # channel, so that both paths run exactly the same interceptors.
            if isinstance(interceptor, grpc.aio.UnaryUnaryClientInterceptor):
                self._unary.append(interceptor)
            elif isinstance(interceptor, grpc.aio.UnaryStreamClientInterceptor):
                self._stream.append(interceptor)
        self._closed = False
        self._active: weakref.WeakSet[_Call] = weakref.WeakSet()

    # ---- what generated stubs call

    def unary_unary(
        self,
        method: str,
        request_serializer: Serializer | None = None,
        response_deserializer: Deserializer | None = None,
        _registered_method: bool = False,
    ) -> _UnaryUnaryMultiCallable:
        return _LocalUnaryUnary(self, method, request_serializer, response_deserializer, self._unary)

    def unary_stream(
        self,
        method: str,
        request_serializer: Serializer | None = None,
        response_deserializer: Deserializer | None = None,
        _registered_method: bool = False,
    ) -> _UnaryStreamMultiCallable:
        return _LocalUnaryStream(self, method, request_serializer, response_deserializer, self._stream)

    def stream_unary(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError("request-streaming calls are not carried in-process")

    def stream_stream(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError("request-streaming calls are not carried in-process")

    # ---- the rest of grpc.aio.Channel

    async def close(self, grace: float | None = None) -> None:
        """New calls fail at once; calls in flight get ``grace`` seconds, then are cancelled."""
        self._closed = True
        pending = [call for call in self._active if call.status is None]
        if pending and grace:
            waiters = [asyncio.ensure_future(call.wait()) for call in pending]
            _, unfinished = await asyncio.wait(waiters, timeout=grace)
            for waiter in unfinished:
                waiter.cancel()
        for call in pending:
            call.terminate(_CHANNEL_CLOSED)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        if self._closed:
            return grpc.ChannelConnectivity.SHUTDOWN
        if self.endpoint.serving:
            return grpc.ChannelConnectivity.READY
        return grpc.ChannelConnectivity.TRANSIENT_FAILURE

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        while self.get_state() == last_observed_state:
            await self.endpoint.wait_changed()

    async def channel_ready(self) -> None:
        await self.endpoint.wait_serving()

    async def __aenter__(self) -> LocalChannel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close(None)

    # ---- used by the calls

    def check_open(self) -> None:
        if self._closed:
            raise grpc.aio.UsageError("the channel is closed")

    def track(self, call: _Call) -> None:
        self._active.add(call)


# ---- multicallables


class _MultiCallableBase:
    def __init__(
        self,
        channel: LocalChannel,
        method: str,
        serializer: Serializer | None,
        deserializer: Deserializer | None,
        interceptors: Sequence[Any],
    ) -> None:
        self._channel = channel
        self._method = method
        self._serializer = serializer
        self._deserializer = deserializer
        self._interceptors = tuple(interceptors)

    def _details(
        self,
        timeout: float | None,
        metadata: Any,
        credentials: grpc.CallCredentials | None,
        wait_for_ready: bool | None,
    ) -> grpc.aio.ClientCallDetails:
        self._channel.check_open()
        if metadata is None:
            metadata = grpc.aio.Metadata()
        elif not isinstance(metadata, grpc.aio.Metadata):
            metadata = grpc.aio.Metadata(*tuple(metadata))
        return grpc.aio.ClientCallDetails(self._method, timeout, metadata, credentials, wait_for_ready)

    def _request(self, details: grpc.aio.ClientCallDetails, request: Any) -> _Outbound:
        """The call as the server will see it: metadata checked, the request serialized (a copy)."""
        data = request if self._serializer is None else self._serializer(request)
        loop = asyncio.get_running_loop()
        deadline = None if details.timeout is None else loop.time() + details.timeout
        return _Outbound(
            str(details.method),
            data,
            _outbound_metadata(details.metadata),
            deadline,
            bool(details.wait_for_ready),
        )


class _LocalUnaryUnary(_MultiCallableBase, _UnaryUnaryMultiCallable):
    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> _UnaryUnaryCall:
        details = self._details(timeout, metadata, credentials, wait_for_ready)
        if not self._interceptors:
            return self._invoke(details, request)
        return _InterceptedUnaryUnaryCall(self._interceptors, details, request, self._invoke)

    def _invoke(self, details: grpc.aio.ClientCallDetails, request: Any) -> LocalUnaryUnaryCall:
        outbound = self._request(details, request)
        channel = self._channel
        retryable = channel.retry is not None and outbound.method in channel.retryable
        attempts = _UnaryAttempts(channel, outbound, retryable=retryable)
        channel.track(attempts)
        return LocalUnaryUnaryCall(attempts, self._deserializer)


class _LocalUnaryStream(_MultiCallableBase, _UnaryStreamMultiCallable):
    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> _UnaryStreamCall:
        details = self._details(timeout, metadata, credentials, wait_for_ready)
        if not self._interceptors:
            return self._invoke(details, request)
        return _InterceptedUnaryStreamCall(self._interceptors, details, request, self._invoke)

    def _invoke(self, details: grpc.aio.ClientCallDetails, request: Any) -> LocalUnaryStreamCall:
        outbound = self._request(details, request)
        channel = self._channel
        exchange = _start(channel, outbound)
        if outbound.deadline is not None and exchange.status is None:
            timer = asyncio.get_running_loop().call_at(outbound.deadline, exchange.terminate, _DEADLINE)
            exchange.add_done_callback(lambda _: timer.cancel())
        channel.track(exchange)
        return LocalUnaryStreamCall(exchange, self._deserializer, channel.max_message_bytes)


class _Outbound:
    """A call's request as it leaves the caller."""

    __slots__ = ("data", "deadline", "metadata", "method", "wait_for_ready")

    def __init__(
        self,
        method: str,
        data: bytes,
        metadata: tuple[Metadatum, ...],
        deadline: float | None,
        wait_for_ready: bool,
    ) -> None:
        self.method = method
        self.data = data
        self.metadata = metadata
        self.deadline = deadline
        self.wait_for_ready = wait_for_ready


def _start(channel: LocalChannel, outbound: _Outbound) -> Exchange:
    size, limit = len(outbound.data), channel.max_message_bytes
    if size > limit:
        # The endpoint never sees it, as a gRPC client never sends it.
        loop = asyncio.get_running_loop()
        refused = Exchange(outbound.method, b"", outbound.metadata, outbound.deadline, loop)
        message = f"Sent message larger than max ({size} vs. {limit})"
        refused.finish(Status(grpc.StatusCode.RESOURCE_EXHAUSTED, message))
        return refused
    return channel.endpoint.start(
        outbound.method,
        outbound.data,
        outbound.metadata,
        outbound.deadline,
        wait_for_ready=outbound.wait_for_ready,
    )


def _outbound_metadata(metadata: grpc.aio.Metadata | None) -> tuple[Metadatum, ...]:
    """The caller's metadata as a server receives it, checked as grpc checks it."""
    entries = metadata_tuple(metadata)
    for key, value in entries:
        if not _LEGAL_KEY.fullmatch(key):
            raise ValueError(f"metadata key {key!r} is invalid: lower-case letters, digits, '-', '_', '.'")
        if key.endswith("-bin") != isinstance(value, bytes):
            kind = "bytes" if key.endswith("-bin") else "str"
            raise TypeError(f"metadata key {key!r} expects a {kind} value, got {type(value).__name__}")
    if not any(key == "user-agent" for key, _ in entries):
        entries = (Metadatum("user-agent", USER_AGENT), *entries)
    return entries


def _rpc_error(status: Status, initial_metadata: tuple[Metadatum, ...]) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(*initial_metadata),
        grpc.aio.Metadata(*status.trailing_metadata),
        status.details,
        f"{status.code.name}:{status.details}",
    )


def _too_large(size: int, limit: int) -> Status:
    message = f"Received message larger than max ({size} vs. {limit})"
    return Status(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


# ---- unary calls


class _UnaryAttempts:
    """The attempts of one unary call and its outcome. Timers and callbacks refer to this, never to
    the caller's call object, so a call the caller drops is cancelled when it is collected."""

    def __init__(self, channel: LocalChannel, outbound: _Outbound, *, retryable: bool) -> None:
        self._channel = channel
        self._outbound = outbound
        self._retryable = retryable
        self._loop = asyncio.get_running_loop()
        self.status: Status | None = None
        self.response: bytes | None = None
        self.initial_metadata: tuple[Metadatum, ...] = ()
        self.locally_cancelled = False
        self._callbacks: list[Callable[[], None]] = []
        self._exchange: Exchange | None = None
        self._attempts = 0
        self._backoff: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        if outbound.deadline is not None:
            self._deadline = self._loop.call_at(outbound.deadline, self.terminate, _DEADLINE)
        self._begin()

    @property
    def deadline(self) -> float | None:
        return self._outbound.deadline

    def _begin(self) -> None:
        self._backoff = None
        self._attempts += 1
        exchange = _start(self._channel, self._outbound)
        self._exchange = exchange
        exchange.add_done_callback(self._attempt_done)

    def _attempt_done(self, exchange: Exchange) -> None:
        if self.status is not None or exchange is not self._exchange:
            return
        status = exchange.status
        assert status is not None
        budget, policy = self._channel.budget, self._channel.retry
        if self._retryable and budget is not None and policy is not None:
            if status.code == grpc.StatusCode.UNAVAILABLE:
                if budget.failed() and self._attempts < policy.max_attempts:
                    delay = policy.backoff(self._attempts, self._channel.rng)
                    deadline = self._outbound.deadline
                    if deadline is None or self._loop.time() + delay < deadline:
                        self._backoff = self._loop.call_later(delay, self._begin)
                        return
            elif status.code == grpc.StatusCode.OK:
                budget.succeeded()
        response = exchange.response
        limit = self._channel.max_message_bytes
        if status.code == grpc.StatusCode.OK and response is not None and len(response) > limit:
            status, response = _too_large(len(response), limit), None
        self._finish(status, response, exchange.initial_metadata)

    def _finish(self, status: Status, response: bytes | None, initial: tuple[Metadatum, ...]) -> None:
        self.status, self.response, self.initial_metadata = status, response, initial
        for timer in (self._deadline, self._backoff):
            if timer is not None:
                timer.cancel()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def terminate(self, status: Status, *, local: bool = False) -> None:
        """End the call now with ``status`` (deadline, cancellation); the handler is cancelled."""
        if self.status is not None:
            return
        self.locally_cancelled = local
        exchange = self._exchange
        self._finish(status, None, ())
        if exchange is not None:
            exchange.terminate(status)

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        if self.status is not None:
            callback()
        else:
            self._callbacks.append(callback)

    async def wait(self) -> Status:
        if self.status is None:
            waiter: asyncio.Future[None] = self._loop.create_future()

            def wake() -> None:
                if not waiter.done():
                    waiter.set_result(None)

            self.add_done_callback(wake)
            await waiter
        assert self.status is not None
        return self.status


class LocalUnaryUnaryCall(_UnaryUnaryCall):
    """The caller's handle on an in-process unary call (grpc.aio.UnaryUnaryCall)."""

    def __init__(self, attempts: _UnaryAttempts, deserializer: Deserializer | None) -> None:
        self._attempts = attempts
        self._deserializer = deserializer
        self._decoded = False
        self._response: Any = None

    def __del__(self) -> None:
        attempts = getattr(self, "_attempts", None)
        if attempts is not None and attempts.status is None:
            attempts.terminate(Status(grpc.StatusCode.CANCELLED, _GC_CANCELLATION))

    def __await__(self) -> Generator[Any, None, Any]:
        yield from self._wait().__await__()
        status = self._attempts.status
        assert status is not None
        if self._attempts.locally_cancelled:
            raise asyncio.CancelledError
        if status.code != grpc.StatusCode.OK:
            raise _rpc_error(status, self._attempts.initial_metadata)
        if not self._decoded:
            data = self._attempts.response
            assert data is not None
            self._response = data if self._deserializer is None else self._deserializer(data)
            self._decoded = True
        return self._response

    async def _wait(self) -> Status:
        try:
            return await self._attempts.wait()
        except asyncio.CancelledError:
            self.cancel()
            raise

    def cancel(self) -> bool:
        if self._attempts.status is not None:
            return False
        self._attempts.terminate(Status(grpc.StatusCode.CANCELLED, _LOCAL_CANCELLATION), local=True)
        return True

    def cancelled(self) -> bool:
        status = self._attempts.status
        return status is not None and status.code == grpc.StatusCode.CANCELLED

    def done(self) -> bool:
        return self._attempts.status is not None

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._attempts.add_done_callback(lambda: callback(self))

    def time_remaining(self) -> float | None:
        deadline = self._attempts.deadline
        return None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())

    async def initial_metadata(self) -> grpc.aio.Metadata:
        await self._wait()
        return grpc.aio.Metadata(*self._attempts.initial_metadata)

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(*(await self._wait()).trailing_metadata)

    async def code(self) -> grpc.StatusCode:
        return (await self._wait()).code

    async def details(self) -> str:
        return (await self._wait()).details

    async def debug_error_string(self) -> str:
        status = await self._wait()
        return f"{status.code.name}:{status.details}"

    async def wait_for_connection(self) -> None:
        status = await self._wait()
        if status.code != grpc.StatusCode.OK:
            raise _rpc_error(status, self._attempts.initial_metadata)


# ---- server-streaming calls


class LocalUnaryStreamCall(_UnaryStreamCall):
    """The caller's handle on an in-process server-streaming call (grpc.aio.UnaryStreamCall)."""

    def __init__(self, exchange: Exchange, deserializer: Deserializer | None, max_message_bytes: int) -> None:
        self._exchange = exchange
        self._deserializer = deserializer
        self._limit = max_message_bytes
        self._locally_cancelled = False
        self._messages: AsyncIterator[Any] | None = None

    def __del__(self) -> None:
        exchange = getattr(self, "_exchange", None)
        if exchange is not None and exchange.status is None:
            exchange.terminate(Status(grpc.StatusCode.CANCELLED, _GC_CANCELLATION))

    def __aiter__(self) -> AsyncIterator[Any]:
        if self._messages is None:
            self._messages = self._iterate()
        return self._messages

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            message = await self.read()
            if message is EOF:
                return
            yield message

    async def read(self) -> Any:
        try:
            data = await self._exchange.receive()
        except asyncio.CancelledError:
            self.cancel()
            raise
        if data is None:
            status = self._exchange.status
            assert status is not None
            if self._locally_cancelled:
                raise asyncio.CancelledError
            if status.code != grpc.StatusCode.OK:
                raise _rpc_error(status, self._exchange.initial_metadata)
            return EOF
        if len(data) > self._limit:
            status = _too_large(len(data), self._limit)
            self._exchange.terminate(status)
            raise _rpc_error(status, self._exchange.initial_metadata)
        return data if self._deserializer is None else self._deserializer(data)

    async def _wait(self) -> Status:
        try:
            return await self._exchange.wait()
        except asyncio.CancelledError:
            self.cancel()
            raise

    def cancel(self) -> bool:
        if self._exchange.status is not None:
            return False
        self._locally_cancelled = True
        self._exchange.terminate(Status(grpc.StatusCode.CANCELLED, _LOCAL_CANCELLATION))
        return True

    def cancelled(self) -> bool:
        status = self._exchange.status
        return status is not None and status.code == grpc.StatusCode.CANCELLED

    def done(self) -> bool:
        return self._exchange.status is not None

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._exchange.add_done_callback(lambda _: callback(self))

    def time_remaining(self) -> float | None:
        return self._exchange.remaining()

    async def initial_metadata(self) -> grpc.aio.Metadata:
        await self._wait()
        return grpc.aio.Metadata(*self._exchange.initial_metadata)

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(*(await self._wait()).trailing_metadata)

    async def code(self) -> grpc.StatusCode:
        return (await self._wait()).code

    async def details(self) -> str:
        return (await self._wait()).details

    async def debug_error_string(self) -> str:
        status = await self._wait()
        return f"{status.code.name}:{status.details}"

    async def wait_for_connection(self) -> None:
        status = self._exchange.status
        if status is not None and status.code != grpc.StatusCode.OK:
            raise _rpc_error(status, self._exchange.initial_metadata)


# ---- the client interceptor chain, run as grpc.aio runs it: in a task started by the call


class _Intercepted:
    """What grpc.aio's InterceptedCall does: the interceptors run in a task; the call methods wait
    for it and then defer to the call it produced."""

    _task: asyncio.Task[Any]

    def __del__(self) -> None:
        task = getattr(self, "_task", None)
        if task is not None and not self.done():
            self.cancel()

    def cancel(self) -> bool:
        if not self._task.done():
            return self._task.cancel()
        if self._task.cancelled() or self._task.exception() is not None:
            return False
        return bool(self._task.result().cancel())

    def cancelled(self) -> bool:
        if self._task.cancelled():
            return True
        if not self._task.done():
            return False
        error = self._task.exception()
        if error is not None:
            return isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.CANCELLED
        return bool(self._task.result().cancelled())

    def done(self) -> bool:
        if not self._task.done():
            return False
        if self._task.cancelled() or self._task.exception() is not None:
            return True
        return bool(self._task.result().done())

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        def when_intercepted(task: asyncio.Task[Any]) -> None:
            if task.cancelled() or task.exception() is not None:
                callback(self)
            else:
                task.result().add_done_callback(lambda _: callback(self))

        self._task.add_done_callback(when_intercepted)

    def time_remaining(self) -> float | None:
        if self._task.done() and not self._task.cancelled() and self._task.exception() is None:
            return self._task.result().time_remaining()  # type: ignore[no-any-return]
        return None

    async def _call(self) -> Any:
        try:
            return await self._task
        except asyncio.CancelledError:
            self.cancel()
            raise

    async def initial_metadata(self) -> grpc.aio.Metadata:
        try:
            call = await self._task
        except grpc.aio.AioRpcError as error:
            return error.initial_metadata() or grpc.aio.Metadata()
        return await call.initial_metadata()  # type: ignore[no-any-return]

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        try:
            call = await self._task
        except grpc.aio.AioRpcError as error:
            return grpc.aio.Metadata(*metadata_tuple(error.trailing_metadata()))
        return await call.trailing_metadata()  # type: ignore[no-any-return]

    async def code(self) -> grpc.StatusCode:
        if self._task.cancelled():
            return grpc.StatusCode.CANCELLED
        try:
            call = await self._task
        except grpc.aio.AioRpcError as error:
            return error.code()
        return await call.code()  # type: ignore[no-any-return]

    async def details(self) -> str:
        try:
            call = await self._task
        except grpc.aio.AioRpcError as error:
            return str(error.details() or "")
        return await call.details()  # type: ignore[no-any-return]

    async def wait_for_connection(self) -> None:
        call = await self._task
        await call.wait_for_connection()

    async def debug_error_string(self) -> str:
        try:
            call = await self._task
        except grpc.aio.AioRpcError as error:
            return str(error.debug_error_string())
        return str(await call.debug_error_string())


class _InterceptedUnaryUnaryCall(_Intercepted, _UnaryUnaryCall):
    def __init__(
        self,
        interceptors: Sequence[grpc.aio.UnaryUnaryClientInterceptor[Any, Any]],
        details: grpc.aio.ClientCallDetails,
        request: Any,
        invoke: Callable[[grpc.aio.ClientCallDetails, Any], _UnaryUnaryCall],
    ) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(_run_unary(interceptors, invoke, details, request))

    def __await__(self) -> Generator[Any, None, Any]:
        call = yield from self._call().__await__()
        response = yield from call.__await__()
        return response


async def _run_unary(
    interceptors: Sequence[grpc.aio.UnaryUnaryClientInterceptor[Any, Any]],
    invoke: Callable[[grpc.aio.ClientCallDetails, Any], _UnaryUnaryCall],
    details: grpc.aio.ClientCallDetails,
    request: Any,
) -> _UnaryUnaryCall:
    if not interceptors:
        return invoke(details, request)
    continuation = functools.partial(_run_unary, interceptors[1:], invoke)
    produced = await interceptors[0].intercept_unary_unary(continuation, details, request)  # type: ignore[arg-type]  # continuation is a coroutine in grpc.aio
    return produced if isinstance(produced, grpc.aio.UnaryUnaryCall) else _Answered(produced)


class _InterceptedUnaryStreamCall(_Intercepted, _UnaryStreamCall):
    def __init__(
        self,
        interceptors: Sequence[grpc.aio.UnaryStreamClientInterceptor[Any, Any]],
        details: grpc.aio.ClientCallDetails,
        request: Any,
        invoke: Callable[[grpc.aio.ClientCallDetails, Any], LocalUnaryStreamCall],
    ) -> None:
        self._innermost: LocalUnaryStreamCall | None = None

        def remember(details: grpc.aio.ClientCallDetails, request: Any) -> LocalUnaryStreamCall:
            self._innermost = invoke(details, request)
            return self._innermost

        self._task = asyncio.get_running_loop().create_task(
            _run_stream(interceptors, remember, self._innermost_call, details, request)
        )
        self._messages: AsyncIterator[Any] | None = None

    def _innermost_call(self) -> LocalUnaryStreamCall:
        assert self._innermost is not None, "an interceptor returned responses without making the call"
        return self._innermost

    def __aiter__(self) -> AsyncIterator[Any]:
        if self._messages is None:
            self._messages = self._iterate()
        return self._messages

    async def _iterate(self) -> AsyncIterator[Any]:
        call = await self._call()
        async for message in call:
            yield message

    async def read(self) -> Any:
        try:
            return await self.__aiter__().__anext__()
        except StopAsyncIteration:
            return EOF


async def _run_stream(
    interceptors: Sequence[grpc.aio.UnaryStreamClientInterceptor[Any, Any]],
    invoke: Callable[[grpc.aio.ClientCallDetails, Any], LocalUnaryStreamCall],
    innermost: Callable[[], LocalUnaryStreamCall],
    details: grpc.aio.ClientCallDetails,
    request: Any,
) -> _UnaryStreamCall:
    if not interceptors:
        return invoke(details, request)
    continuation = functools.partial(_run_stream, interceptors[1:], invoke, innermost)
    produced = await interceptors[0].intercept_unary_stream(continuation, details, request)  # type: ignore[arg-type]  # continuation is a coroutine in grpc.aio
    if isinstance(produced, grpc.aio.UnaryStreamCall):
        return produced
    return _Iterated(innermost(), produced)


class _Answered(_UnaryUnaryCall):
    """An interceptor answered without a call (grpc.aio's UnaryUnaryCallResponse)."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def __await__(self) -> Generator[Any, None, Any]:
        return self._response
        yield  # a generator, as __await__ must be

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        callback(self)

    def time_remaining(self) -> float | None:
        return None

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata()

    async def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.OK

    async def details(self) -> str:
        return ""

    async def wait_for_connection(self) -> None:
        return None


class _Iterated(_UnaryStreamCall):
    """A streaming call whose responses an interceptor replaced by its own iterator."""

    def __init__(self, call: LocalUnaryStreamCall, responses: AsyncIterable[Any]) -> None:
        self._inner = call
        self._responses = responses

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._responses.__aiter__()

    async def read(self) -> Any:
        try:
            return await self._responses.__aiter__().__anext__()
        except StopAsyncIteration:
            return EOF

    def cancel(self) -> bool:
        return self._inner.cancel()

    def cancelled(self) -> bool:
        return self._inner.cancelled()

    def done(self) -> bool:
        return self._inner.done()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._inner.add_done_callback(callback)

    def time_remaining(self) -> float | None:
        return self._inner.time_remaining()

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return await self._inner.initial_metadata()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return await self._inner.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        return await self._inner.code()

    async def details(self) -> str:
        return await self._inner.details()

    async def wait_for_connection(self) -> None:
        await self._inner.wait_for_connection()
