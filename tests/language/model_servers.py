"""Scripted OpenAI-compatible model servers on loopback: each answers ``POST /chat/completions``
with a stream in the mode it is set to (healthy, slow, failing, rate-limiting, cut off mid-stream)
and ``GET /models``; each can be killed and started again on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, object]


@dataclass
class ModelServer:
    """One server. ``mode`` is one of ok, slow, fail, ratelimit, cut; change it at any time."""

    name: str
    mode: str = "ok"
    # Seconds a slow server waits before its answer; the Retry-After of a rate-limiting one.
    delay_s: float = 5.0
    retry_after_s: int = 30
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def completions(self) -> list[Received]:
        return [r for r in self.received if r.path.endswith("/chat/completions")]

    def sessions(self) -> list[str]:
        return [r.headers.get("x-session-id", "") for r in self.completions]

    async def start(self) -> ModelServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def kill(self) -> None:
        """Stops listening and drops every open connection, mid-stream or not."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode().split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                body = json.loads(raw) if raw else {}
                self.received.append(Received(path, headers, body))
                if method == "GET":
                    await self._respond(writer, 200, {"data": [{"id": self.name}]})
                    continue
                if not await self._complete(writer):
                    return
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(ConnectionError):
                writer.close()

    async def _complete(self, writer: asyncio.StreamWriter) -> bool:
        """Answers one completion; False when the connection must close."""
        mode = self.mode
        if mode == "slow":
            await asyncio.sleep(self.delay_s)
        if mode == "fail":
            await self._respond(writer, 503, {"error": {"message": f"{self.name} is overloaded"}})
            return True
        if mode == "ratelimit":
            await self._respond(
                writer,
                429,
                {"error": {"message": "slow down"}},
                extra=f"retry-after: {self.retry_after_s}\r\n",
            )
            return True
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        writer.write(_event({"choices": [{"index": 0, "delta": {"content": f"from {self.name}."}}]}))
        await writer.drain()
        if mode == "cut":
            writer.transport.abort()
            return False
        writer.write(_event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        writer.write(_event({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}))
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()
        return False

    async def _respond(
        self, writer: asyncio.StreamWriter, status: int, body: dict[str, object], extra: str = ""
    ) -> None:
        raw = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(raw)}\r\n"
            f"{extra}\r\n".encode()
            + raw
        )
        await writer.drain()


def _event(payload: dict[str, object]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()
