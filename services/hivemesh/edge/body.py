"""A bound on request bodies, for every route of the edge: a body larger than the bound is refused
with 413 before the app sees any of it (by its Content-Length, or as soon as the bytes received
pass the bound). A body within it is read whole and handed on, so the app never waits on a slow
sender either.

Before a refusal the rest of the body is read and dropped, up to ``DRAIN_FACTOR`` times the bound,
so that the client, still sending, gets to read the answer (a connection closed on unread bytes is
reset); a body larger still is answered at once and its connection closed."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hivemesh.edge.errors import HttpError, bad_request

DRAIN_FACTOR = 8


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    def _too_large(self) -> HttpError:
        return HttpError(
            413,
            f"the request body is larger than {self._max} bytes",
            "invalid_request_error",
            "request_too_large",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0:
                await self._refuse(
                    bad_request("the Content-Length header is not a number"), scope, receive, send
                )
                return
            if length > self._max:
                drained = length <= self._max * DRAIN_FACTOR and await self._drain(receive, length)
                await self._refuse(self._too_large(), scope, receive, send, close=not drained)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                drained = not message.get("more_body", False) or await self._drain(
                    receive, self._max * DRAIN_FACTOR - size
                )
                await self._refuse(self._too_large(), scope, receive, send, close=not drained)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self._app(scope, replay, send)

    @staticmethod
    async def _drain(receive: Receive, budget: int) -> bool:
        """Read and drop the rest of a body of at most ``budget`` more bytes; whether it ended."""
        while budget >= 0:
            message = await receive()
            if message["type"] == "http.disconnect":
                return False
            budget -= len(message.get("body", b""))
            if not message.get("more_body", False):
                return budget >= 0
        return False

    @staticmethod
    async def _refuse(
        error: HttpError, scope: Scope, receive: Receive, send: Send, *, close: bool = False
    ) -> None:
        headers = {"connection": "close"} if close else None
        response = JSONResponse(error.body(), status_code=error.status, headers=headers)
        await response(scope, receive, send)
