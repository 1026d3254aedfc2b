"""Configured MCP servers, each supervised by its own task: started, initialised and listed; listed
again when it announces that its tools changed; restarted with backoff when it exits or stops
answering; killed with its process group on shutdown. Their tools join the registry as
``<server>.<tool>`` and keep their schemas."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

import anyio
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from jsonschema.exceptions import SchemaError
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError
from mcp.shared.message import SessionMessage
from mcp.shared.session import RequestResponder

from hivemesh.mesh import deadlines
from hivemesh.mesh.errors import DeadlineExceeded, FailedPrecondition, Unavailable
from hivemesh.tool.arguments import compile_schema
from hivemesh.tool.capability import check_intents
from hivemesh.tool.mcpbridge.config import McpServerConfig
from hivemesh.tool.mcpbridge.stdio import open_stdio
from hivemesh.tool.model import JsonObject, Tool, ToolContext, ToolOutput, ToolSpec

_log = logging.getLogger(__name__)
# A connection that stayed up this long starts its next restart backoff from the beginning.
_STABLE_S = 60.0
# How the SDK's streamable HTTP client reports a 404 for its session: the server has forgotten it
# (it restarted, or let the session expire), so the bridge must start a new one.
_SESSION_TERMINATED = 32600
# Failures of the HTTP connection itself; a timeout is not one (an idle event stream may time out).
_CONNECTION_LOST = (httpx.NetworkError, httpx.RemoteProtocolError)
_T = TypeVar("_T")
_CONTENT_SCHEMA: JsonObject = {
    "type": "object",
    "properties": {"content": {"type": "array", "items": {"type": "object"}}},
}

# What an MCP session hands its message handler: server requests, notifications, transport errors.
Incoming = RequestResponder[types.ServerRequest, types.ClientResult] | types.ServerNotification | Exception
Streams = tuple[
    MemoryObjectReceiveStream[SessionMessage | Exception],
    MemoryObjectSendStream[SessionMessage],
    "asyncio.subprocess.Process | None",
]


class McpTool:
    """One tool of one MCP server."""

    def __init__(self, server: McpServer, remote_name: str, spec: ToolSpec) -> None:
        self._server = server
        self._remote_name = remote_name
        self._spec = spec

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    async def run(self, arguments: JsonObject, context: ToolContext) -> ToolOutput:
        session, ended = self._server.session, self._server.ended
        name = self._spec.name
        if session is None:
            raise Unavailable(
                f"the MCP server {self._server.name} is not running (it is being restarted)",
                reason="MCP_SERVER_UNAVAILABLE",
                metadata={"tool": name, "server": self._server.name},
            )

        async def forward(progress: float, total: float | None, message: str | None) -> None:
            await context.progress(progress, total or 0.0, message or "")

        left = deadlines.remaining()
        timeout = self._spec.timeout_s if left is None else min(self._spec.timeout_s, left)
        try:
            result = await _unless_ended(
                ended,
                session.call_tool(
                    self._remote_name,
                    dict(arguments),
                    read_timeout_seconds=timedelta(seconds=max(timeout, 0.001)),
                    progress_callback=forward,
                ),
            )
        except McpError as exc:
            raise self._server.call_error(name, exc) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, _ConnectionEnded):
            ended.set()  # this call's connection, never one started since
            raise Unavailable(
                f"the MCP server {self._server.name} exited or was cut off during the call",
                reason="TOOL_CRASHED",
                metadata={"tool": name, "server": self._server.name},
            ) from None
        texts = [c.text for c in result.content if isinstance(c, types.TextContent)]
        if result.isError:
            raise FailedPrecondition(
                f"{name} failed: {' '.join(texts) or 'the MCP server reported an error'}",
                reason="TOOL_FAILED",
                metadata={"tool": name},
            )
        structured = result.structuredContent
        content = [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in result.content]
        value: dict[str, Any] = (
            dict(structured) if structured is not None and self._has_output_schema else {"content": content}
        )
        display = "\n".join(texts) or (
            json.dumps(structured, sort_keys=True) if structured is not None else ""
        )
        return ToolOutput(value, display)

    @property
    def _has_output_schema(self) -> bool:
        return self._spec.result_schema is not _CONTENT_SCHEMA


class McpServer:
    """Supervises one MCP server for as long as the service runs."""

    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self.session: ClientSession | None = None
        self._tools: tuple[McpTool, ...] = ()
        self._stopping = asyncio.Event()
        self._ended = asyncio.Event()
        self._attempted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def tools(self) -> tuple[McpTool, ...]:
        # Kept while the server restarts, so callers see a stable list and a clear UNAVAILABLE.
        return self._tools

    @property
    def ended(self) -> asyncio.Event:
        """Set when the current connection ends, for whatever reason."""
        return self._ended

    def broken(self) -> None:
        """The connection was found dead: end it, and the supervisor starts a new one."""
        self._ended.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"mcp:{self.name}")
        # Serve with the server's tools listed when it starts in time; carry on without them if not.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._attempted.wait(), self.config.startup_timeout_s + 1.0)

    async def stop(self, grace_s: float) -> None:
        self._stopping.set()
        self._ended.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), max(grace_s, 3.0))
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def call_error(self, tool: str, exc: McpError) -> Exception:
        code, message = exc.error.code, exc.error.message
        meta = {"tool": tool, "server": self.name, "mcp_code": str(code)}
        if code == types.CONNECTION_CLOSED:
            self.broken()
            return Unavailable(
                f"the MCP server {self.name} exited during the call", reason="TOOL_CRASHED", metadata=meta
            )
        if code == _SESSION_TERMINATED:
            self.broken()
            return Unavailable(
                f"the MCP server {self.name} no longer knows the session (it restarted?); reconnecting",
                reason="MCP_SESSION_ENDED",
                metadata=meta,
            )
        if code == httpx.codes.REQUEST_TIMEOUT:
            return DeadlineExceeded(f"{tool} did not answer in time", reason="TOOL_TIMEOUT", metadata=meta)
        return FailedPrecondition(f"{tool}: {message}", reason="MCP_ERROR", metadata=meta)

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self.config.restart_backoff_s
        while not self._stopping.is_set():
            began = loop.time()
            try:
                await self._serve_once()
            except Exception as exc:  # any failure of the server means the same thing: restart it
                _log.warning("MCP server %s failed: %s: %s", self.name, type(exc).__name__, exc)
            finally:
                self.session = None
                self._ended.set()  # calls still waiting on this connection fail at once
                self._attempted.set()
            if self._stopping.is_set():
                return
            if loop.time() - began > _STABLE_S:
                backoff = self.config.restart_backoff_s
            _log.warning("MCP server %s stopped; restarting in %.1fs", self.name, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, self.config.max_restart_backoff_s)

    async def _serve_once(self) -> None:
        self._ended = asyncio.Event()
        changed = asyncio.Event()

        async def on_message(message: Incoming) -> None:
            # Only noted here: listing from inside the session's receive loop could never get its answer.
            if isinstance(message, types.ServerNotification) and isinstance(
                message.root, types.ToolListChangedNotification
            ):
                changed.set()

        async with (
            self._connect() as (read, write, process),
            ClientSession(read, write, message_handler=on_message) as session,
        ):
            with anyio.fail_after(self.config.startup_timeout_s):
                await session.initialize()
                listed = await _list_tools(session)
            self._tools = tuple(self._adapt(t) for t in listed if self._usable(t))
            self.session = session
            self._attempted.set()
            _log.info("MCP server %s is up with %d tools", self.name, len(self._tools))
            while await self._until_ended(process, changed):
                changed.clear()
                with anyio.fail_after(self.config.startup_timeout_s):
                    listed = await _list_tools(session)
                self._tools = tuple(self._adapt(t) for t in listed if self._usable(t))
                _log.info("MCP server %s changed its tools; it has %d now", self.name, len(self._tools))

    async def _until_ended(self, process: asyncio.subprocess.Process | None, changed: asyncio.Event) -> bool:
        """Wait until the connection ends (False) or the server announces new tools (True)."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._ended.wait())]
        if process is not None:
            waits.append(asyncio.ensure_future(process.wait()))
        news = asyncio.ensure_future(changed.wait())
        try:
            done, _ = await asyncio.wait([*waits, news], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in [*waits, news]:
                wait.cancel()
        return done == {news}

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[Streams]:
        if self.config.command is not None:
            async with open_stdio(self.config) as channel:
                yield channel.read, channel.write, channel.process
            return
        assert self.config.url is not None
        timeout = httpx.Timeout(self.config.timeout_s, read=max(self.config.timeout_s, 300.0))
        transport = _WatchedTransport(httpx.AsyncHTTPTransport(), self.broken)
        async with (
            httpx.AsyncClient(
                headers=dict(self.config.headers), timeout=timeout, follow_redirects=True, transport=transport
            ) as client,
            streamable_http_client(self.config.url, http_client=client) as (read, write, _),
        ):
            yield read, write, None

    def _usable(self, tool: types.Tool) -> bool:
        try:
            compile_schema(tool.inputSchema)
        except SchemaError as exc:
            _log.warning(
                "MCP server %s: skipping tool %s, its input schema is invalid: %s", self.name, tool.name, exc
            )
            return False
        return True

    def _adapt(self, tool: types.Tool) -> McpTool:
        hints = tool.annotations
        read_only = bool(hints and hints.readOnlyHint)
        spec = ToolSpec(
            name=f"{self.name}.{tool.name}",
            description=tool.description or tool.title or "",
            arguments_schema=tool.inputSchema,
            result_schema=tool.outputSchema or _CONTENT_SCHEMA,
            side_effects=not read_only,
            timeout_s=self.config.timeout_s,
            max_concurrency=self.config.max_concurrency,
            source=f"mcp:{self.name}",
            intents=self.config.intents.get(tool.name, ()),
        )
        try:
            check_intents(spec)
        except ValueError as exc:
            # The server's tool no longer fits what the configuration declares for it: it is still
            # offered by name, and the planner does not map an intent to it.
            _log.warning("MCP server %s: %s; its intents are ignored", self.name, exc)
            spec = replace(spec, intents=())
        return McpTool(self, tool.name, spec)


class _ConnectionEnded(Exception):
    pass


async def _unless_ended(ended: asyncio.Event, call: Awaitable[_T]) -> _T:
    """Await ``call``, but give up with ``_ConnectionEnded`` when its connection ends first (the SDK
    does not always fail the requests in flight when a connection is lost)."""
    task = asyncio.ensure_future(call)
    waiter = asyncio.ensure_future(ended.wait())
    try:
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait((task,))
    if task.cancelled():
        raise _ConnectionEnded
    return task.result()


class _WatchedTransport(httpx.AsyncBaseTransport):
    """Reports a lost connection to a streamable HTTP server (refused, reset, cut off mid-answer).

    The SDK's client logs these and carries on, which would leave the session looking healthy and
    its calls waiting for answers that cannot come."""

    def __init__(self, inner: httpx.AsyncBaseTransport, lost: Callable[[], None]) -> None:
        self._inner = inner
        self._lost = lost

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except _CONNECTION_LOST:
            self._lost()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_WatchedStream(response.stream, self._lost),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class _WatchedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, lost: Callable[[], None]) -> None:
        self._inner = inner
        self._lost = lost

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except _CONNECTION_LOST:
            self._lost()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _list_tools(session: ClientSession) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        page = await session.list_tools(
            params=types.PaginatedRequestParams(cursor=cursor) if cursor else None
        )
        tools.extend(page.tools)
        cursor = page.nextCursor
        if not cursor:
            return tools


class McpBridge:
    """All configured MCP servers: a ToolSource for the registry and a Component of the service."""

    def __init__(self, servers: Sequence[McpServerConfig]) -> None:
        self._servers = [McpServer(config) for config in servers]

    def tools(self) -> Sequence[Tool]:
        return [t for server in self._servers for t in server.tools()]

    async def start(self) -> None:
        await asyncio.gather(*(server.start() for server in self._servers))

    async def stop(self, grace_s: float) -> None:
        await asyncio.gather(*(server.stop(grace_s) for server in self._servers))
