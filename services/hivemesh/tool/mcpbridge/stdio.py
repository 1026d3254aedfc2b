"""A stdio MCP server as a child process in its own process group, so that stopping it stops
everything it started, and so that its exit is seen at once (its stdout closes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import types
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from hivemesh.tool.mcpbridge.config import McpServerConfig

_log = logging.getLogger(__name__)
# A single JSON-RPC line (a tool result) may be large.
_LINE_LIMIT = 32 * 1024 * 1024


@dataclass
class StdioChannel:
    process: asyncio.subprocess.Process
    read: MemoryObjectReceiveStream[SessionMessage | Exception]
    write: MemoryObjectSendStream[SessionMessage]


@contextlib.asynccontextmanager
async def open_stdio(config: McpServerConfig, term_grace_s: float = 2.0) -> AsyncIterator[StdioChannel]:
    assert config.command is not None
    env: Mapping[str, str] = {**os.environ, **config.env}
    process = await asyncio.create_subprocess_exec(
        config.command,
        *config.args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=config.cwd,
        start_new_session=True,
        limit=_LINE_LIMIT,
    )
    read_in, read_out = anyio.create_memory_object_stream[SessionMessage | Exception](64)
    write_in, write_out = anyio.create_memory_object_stream[SessionMessage](64)
    pumps = [
        asyncio.create_task(_from_server(process, read_in)),
        asyncio.create_task(_to_server(process, write_out)),
    ]
    try:
        yield StdioChannel(process, read_out, write_in)
    finally:
        for pump in pumps:
            pump.cancel()
        await kill_group(process, term_grace_s)
        for stream in (read_in, read_out, write_in, write_out):
            await stream.aclose()


async def _from_server(
    process: asyncio.subprocess.Process, sink: MemoryObjectSendStream[SessionMessage | Exception]
) -> None:
    assert process.stdout is not None
    with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
        async with sink:
            while True:
                try:
                    line = await process.stdout.readline()
                except (ValueError, asyncio.LimitOverrunError) as exc:  # a line beyond the limit
                    await sink.send(exc)
                    continue
                if not line:
                    return  # the server exited (or closed its stdout): the session ends
                if not line.strip():
                    continue
                try:
                    message = types.JSONRPCMessage.model_validate_json(line)
                except ValidationError as exc:
                    _log.warning("an MCP server wrote a line that is not JSON-RPC: %.200r", line)
                    await sink.send(exc)
                    continue
                await sink.send(SessionMessage(message))


async def _to_server(
    process: asyncio.subprocess.Process, source: MemoryObjectReceiveStream[SessionMessage]
) -> None:
    assert process.stdin is not None
    with contextlib.suppress(anyio.ClosedResourceError, BrokenPipeError, ConnectionResetError):
        async with source:
            async for message in source:
                text = message.message.model_dump_json(by_alias=True, exclude_none=True)
                process.stdin.write(text.encode() + b"\n")
                await process.stdin.drain()


async def kill_group(process: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM the whole process group, SIGKILL what is left after ``grace_s``."""
    if process.stdin is not None:
        process.stdin.close()
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()
    # The leader may be gone while children it started still run in its group.
    _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
