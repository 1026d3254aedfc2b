"""The console's JSON API: each request becomes calls of the gateway with the caller's own
credentials, so what a caller sees and may change is the gateway's decision (its tenant, its
authentication), never the console's. Nothing is kept between requests.

- ``GET  /api/tasks``: the caller's tasks, newest first, filtered by ``state`` (comma-separated
  names), ``tenant`` (another tenant than the caller's only without authentication), ``user``,
  ``after`` / ``before`` (ISO 8601 creation times) and ``q`` (text the request
  contains, case-insensitive: the console pages through the gateway's list until it has a page of
  matches or has read ``SCAN_LIMIT`` tasks, and hands back the token to read on from);
- ``GET  /api/tasks/live``: server-sent ``tasks`` events, the newest page with the same filters,
  at once and whenever it changes (the gateway's WatchTasks), so the list needs no polling;
- ``POST /api/tasks``: submit a task (``text``, ``user``, ``session``, ``tenant``);
- ``GET  /api/tasks/{id}``, ``POST /api/tasks/{id}/cancel``, ``POST /api/tasks/{id}/answer``,
  ``POST /api/tasks/{id}/verify`` (the hash chain of its log: ``intact``, ``events``, ``broken_at``);
- ``GET  /api/tasks/{id}/events``: server-sent events fed by WatchTask (``after`` or the
  ``Last-Event-ID`` header resume after a sequence number), then ``end``;
- ``GET  /api/dead-letters``, ``GET /api/dead-letters/{id}``, ``POST /api/dead-letters/{id}/replay``,
  ``POST /api/dead-letters/purge`` (``task_id``, or ``all``: true);
- ``GET  /api/tasks/{id}/trace``: the spans of the task's trace, read back from
  ``HIVEMESH_TRACE_FILE`` (traces.py) and from those the edge's OTLP receiver keeps (receiver.py);
- ``GET  /api/tools``: the catalogue with its JSON Schemas;
- ``GET  /api/memory``: what memory holds for the caller's tenant (``tenant``: another one, only
  without authentication; ``user``: one user of it), layer by layer: counts, never content.

Errors are ``{"error": {"message", "type", "param", "code"}}`` with the gateway's status mapped to
HTTP as the other doors map it (bad input 400 naming the parameter, 401, 404, 429, 503).
A request that changes something must be JSON (``content-type: application/json``), which a page
of another origin cannot send without the browser asking first (CORS), and nothing here answers
that question: a web page the operator visits cannot act through the console.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hivemesh.client import HivemeshClient
from hivemesh.common.v1.task_pb2 import Task, TaskState
from hivemesh.console.receiver import SpanStore
from hivemesh.console.traces import MAX_SPANS, SpanFile
from hivemesh.edge.callers import caller_from_headers
from hivemesh.edge.errors import HttpError, bad_request, from_rpc_error
from hivemesh.edge.gateway import GatewayLink

# Most tasks one text search reads from the gateway before it answers with what it found so far
# (and the token to go on from).
SCAN_LIMIT = 1000
PAGE_SIZE = 50
_MAX_PAGE_SIZE = 200
_MAX_TEXT = 16384
_STATES: Mapping[str, TaskState.ValueType] = {
    TaskState.Name(value).removeprefix("TASK_STATE_").lower(): value
    for value in TaskState.values()
    if value != TaskState.TASK_STATE_UNSPECIFIED
}
# Fields of the gateway's requests, as the console's parameters name them.
_PARAMS: Mapping[str, str] = {
    "tenant_id": "tenant",
    "created_after": "after",
    "created_before": "before",
    "user_id": "user",
    "scope.tenant_id": "tenant",
    "scope.user_id": "user",
    "scope.session_id": "session",
}
# Comment lines on an idle event stream so proxies do not close it while a task waits.
_PING_S = 15
Handler = Callable[[Request], Awaitable[Response]]


def as_json(message: Message) -> dict[str, Any]:
    """A message as the gateway's JSON mapping (field names as in the proto, enums by name)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _error(error: HttpError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers())


def _answers(handler: Handler) -> Handler:
    """The handler, with gateway refusals and bad input answered as HTTP errors."""

    async def answered(request: Request) -> Response:
        try:
            return await handler(request)
        except HttpError as error:
            return _error(error)
        except grpc.aio.AioRpcError as error:
            return _error(from_rpc_error(error, _PARAMS))

    return answered


def _time(raw: str, param: str) -> Timestamp:
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{param} must be an ISO 8601 time, got {raw!r}", param) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = Timestamp()
    try:
        stamp.FromDatetime(moment)
    except (OverflowError, ValueError):
        raise bad_request(f"{param} is outside the times a task can have, got {raw!r}", param) from None
    return stamp


def _states(raw: str) -> list[TaskState.ValueType]:
    states = []
    for name in filter(None, (part.strip().lower() for part in raw.split(","))):
        if name not in _STATES:
            raise bad_request(f"state must be among {', '.join(_STATES)}, got {name!r}", "state")
        states.append(_STATES[name])
    return states


def _page_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= _MAX_PAGE_SIZE:
        raise bad_request(f"page_size must be a whole number from 1 to {_MAX_PAGE_SIZE}", "page_size")
    return int(raw)


def _filters(query: Mapping[str, str]) -> dict[str, Any]:
    """The gateway's filters of a task list, from the console's parameters."""
    return {
        "states": _states(query.get("state", "")),
        "created_after": _time(query["after"], "after") if query.get("after") else None,
        "created_before": _time(query["before"], "before") if query.get("before") else None,
        "user_id": query.get("user", "").strip(),
        "tenant_id": query.get("tenant", "").strip(),
    }


def _matches(task: Task, text: str) -> bool:
    """Whether ``task``'s request contains ``text`` (already case-folded; empty: every task)."""
    return not text or text in task.input_text.casefold()


async def _json_body(request: Request) -> dict[str, Any]:
    """The body of a request that changes something: a JSON object, sent as JSON."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise HttpError(415, "send the request as application/json", "invalid_request_error", "not_json")
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


def _text_field(body: Mapping[str, Any], name: str, *, required: bool = True, default: str = "") -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string", name)
    value = value.strip()
    if required and not value:
        raise bad_request(f"{name} is required", name)
    if len(value) > _MAX_TEXT:
        raise bad_request(f"{name} is longer than {_MAX_TEXT} characters", name)
    return value


class ConsoleApi:
    """The routes of the console's API, calling the gateway through the edge's one channel;
    ``spans``: where finished spans are written (None when they are not written to a file);
    ``received``: the spans the OTLP receiver keeps (None when it is off)."""

    def __init__(
        self, gateway: GatewayLink, spans: SpanFile | None = None, received: SpanStore | None = None
    ) -> None:
        self._gateway = gateway
        self._spans = spans
        self._received = received

    def routes(self) -> list[Route]:
        return [
            Route("/api/tasks", _answers(self.list_tasks), methods=["GET"]),
            Route("/api/tasks", _answers(self.submit), methods=["POST"]),
            Route("/api/tasks/live", _answers(self.live_tasks), methods=["GET"]),
            Route("/api/tasks/{task_id}", _answers(self.get_task), methods=["GET"]),
            Route("/api/tasks/{task_id}/events", _answers(self.events), methods=["GET"]),
            Route("/api/tasks/{task_id}/cancel", _answers(self.cancel), methods=["POST"]),
            Route("/api/tasks/{task_id}/answer", _answers(self.answer), methods=["POST"]),
            Route("/api/tasks/{task_id}/verify", _answers(self.verify), methods=["POST"]),
            Route("/api/tasks/{task_id}/trace", _answers(self.trace), methods=["GET"]),
            Route("/api/dead-letters", _answers(self.dead_letters), methods=["GET"]),
            Route("/api/dead-letters/purge", _answers(self.purge), methods=["POST"]),
            Route("/api/dead-letters/{task_id}", _answers(self.dead_letter), methods=["GET"]),
            Route("/api/dead-letters/{task_id}/replay", _answers(self.replay), methods=["POST"]),
            Route("/api/tools", _answers(self.tools), methods=["GET"]),
            Route("/api/memory", _answers(self.memory), methods=["GET"]),
            Route("/api/health", _answers(self.health), methods=["GET"]),
        ]

    def _client(self, request: Request) -> HivemeshClient:
        return self._gateway.client(caller_from_headers(request.headers))

    async def list_tasks(self, request: Request) -> Response:
        query = request.query_params
        size = _page_size(query.get("page_size"))
        filters = _filters(query)
        text = query.get("q", "").strip().casefold()
        token = query.get("page_token", "")
        client = self._client(request)
        found: list[dict[str, Any]] = []
        scanned = 0
        while True:
            # Without a text filter one page of the gateway's is the answer; with one, pages are
            # read until enough tasks match (the last page may overshoot: its extra matches are
            # kept, not dropped, so paging on from its token loses none).
            tasks, token = await client.list(page_size=size, page_token=token, **filters)
            scanned += len(tasks)
            found.extend(as_json(t) for t in tasks if _matches(t, text))
            if not text or not token or len(found) >= size or scanned >= SCAN_LIMIT:
                break
        return JSONResponse({"tasks": found, "next_page_token": token, "scanned": scanned})

    async def live_tasks(self, request: Request) -> Response:
        """Server-sent ``tasks`` events: the newest page (the list's filters; ``q`` keeps the
        matches among it), at once and again whenever it changes (WatchTasks)."""
        query = request.query_params
        size = _page_size(query.get("page_size"))
        filters = _filters(query)
        text = query.get("q", "").strip().casefold()
        client = self._client(request)
        watch = client.watch_tasks(page_size=size, **filters)
        # The first page is read before the response starts, so a refusal (bad credentials,
        # another tenant) is an HTTP error, not a stream that ends at once.
        try:
            first = await anext(watch)
        except BaseException:
            await watch.aclose()
            raise

        def event(tasks: list[Task]) -> ServerSentEvent:
            shown = [as_json(t) for t in tasks if _matches(t, text)]
            return ServerSentEvent(data=json.dumps({"tasks": shown, "scanned": len(tasks)}), event="tasks")

        async def stream() -> AsyncIterator[ServerSentEvent]:
            try:
                yield event(first)
                async for tasks in watch:
                    yield event(tasks)
            except grpc.aio.AioRpcError as exc:
                yield ServerSentEvent(data=json.dumps(from_rpc_error(exc, _PARAMS).body()), event="error")
            finally:
                await watch.aclose()
            yield ServerSentEvent(data="{}", event="end")

        return EventSourceResponse(stream(), ping=_PING_S)

    async def submit(self, request: Request) -> Response:
        body = await _json_body(request)
        caller = caller_from_headers(request.headers)
        task, existing = await self._gateway.client(caller).submit(
            _text_field(body, "text"),
            user_id=_text_field(body, "user", default=caller.user_id),
            session_id=_text_field(body, "session", default="console"),
            tenant_id=_text_field(body, "tenant", required=False),
        )
        return JSONResponse(
            {"task": as_json(task), "existing": existing}, status_code=200 if existing else 201
        )

    async def get_task(self, request: Request) -> Response:
        task = await self._client(request).get(request.path_params["task_id"])
        return JSONResponse({"task": as_json(task)})

    async def cancel(self, request: Request) -> Response:
        body = await _json_body(request)
        reason = _text_field(body, "reason", required=False, default="canceled from the console")
        task = await self._client(request).cancel(request.path_params["task_id"], reason)
        return JSONResponse({"task": as_json(task)})

    async def answer(self, request: Request) -> Response:
        body = await _json_body(request)
        task = await self._client(request).answer(request.path_params["task_id"], _text_field(body, "text"))
        return JSONResponse({"task": as_json(task)})

    async def verify(self, request: Request) -> Response:
        await _json_body(request)
        found = await self._client(request).verify(request.path_params["task_id"])
        return JSONResponse(
            {
                "intact": found.intact,
                "events": found.events,
                "broken_at": found.broken_at,
                "problem": found.problem,
            }
        )

    async def trace(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        # The gateway says whether the caller may see the task at all; then its spans are read.
        await self._client(request).get(task_id)
        if self._spans is None and self._received is None:
            return JSONResponse(
                {
                    "available": False,
                    "spans": [],
                    "reason": "spans are neither written to a file here (HIVEMESH_TRACE_FILE) nor "
                    "received over OTLP (HIVEMESH_CONSOLE_OTLP); spans exported to a collector are in "
                    "its backend, by hivemesh.task.id",
                }
            )
        spans: list[dict[str, Any]] = []
        read_bytes, whole_file = 0, True
        if self._spans is not None:
            found = await self._spans.trace_of(task_id)
            spans, read_bytes, whole_file = found.spans, found.read_bytes, found.whole_file
        sources = ["file"] if self._spans is not None else []
        if self._received is not None:
            sources.append("otlp")
            # A span both written to the file and received is shown once.
            known = {(s.get("trace_id"), s.get("span_id")) for s in spans}
            spans = spans + [
                s for s in self._received.trace_of(task_id) if (s["trace_id"], s["span_id"]) not in known
            ]
            spans.sort(key=lambda s: (s.get("start_ns") or 0, s.get("end_ns") or 0))
            spans = spans[:MAX_SPANS]
        return JSONResponse(
            {
                "available": True,
                "spans": spans,
                "sources": sources,
                "read_bytes": read_bytes,
                "whole_file": whole_file,
            }
        )

    async def events(self, request: Request) -> Response:
        raw = request.query_params.get("after") or request.headers.get("last-event-id") or "0"
        if not raw.isdigit():
            raise bad_request(f"after must be a sequence number, got {raw!r}", "after")
        task_id = request.path_params["task_id"]
        client = self._client(request)
        # The first call happens before the response starts, so a refusal (unknown task, bad
        # credentials) is an HTTP error, not a stream that ends at once.
        await client.get(task_id)
        patience = self._gateway.patience_s

        async def stream() -> AsyncIterator[ServerSentEvent]:
            try:
                async for event in client.follow(task_id, int(raw), patience_s=patience):
                    yield ServerSentEvent(
                        data=json.dumps(as_json(event)), event="task-event", id=str(event.sequence)
                    )
            except grpc.aio.AioRpcError as exc:
                yield ServerSentEvent(data=json.dumps(from_rpc_error(exc).body()), event="error")
            yield ServerSentEvent(data="{}", event="end")

        return EventSourceResponse(stream(), ping=_PING_S)

    async def dead_letters(self, request: Request) -> Response:
        letters, token = await self._client(request).dead_letters(
            page_size=_page_size(request.query_params.get("page_size")),
            page_token=request.query_params.get("page_token", ""),
        )
        return JSONResponse({"dead_letters": [as_json(d) for d in letters], "next_page_token": token})

    async def dead_letter(self, request: Request) -> Response:
        letter = await self._client(request).dead_letter(request.path_params["task_id"])
        return JSONResponse({"dead_letter": as_json(letter)})

    async def replay(self, request: Request) -> Response:
        await _json_body(request)
        task = await self._client(request).replay_dead_letter(request.path_params["task_id"])
        return JSONResponse({"task": as_json(task)})

    async def purge(self, request: Request) -> Response:
        body = await _json_body(request)
        every = body.get("all", False)
        if not isinstance(every, bool):
            raise bad_request("all must be true or false", "all")
        task_id = body.get("task_id")
        if every == (task_id is not None):
            raise bad_request("name one dead letter (task_id) or all of them (all: true)", "task_id")
        if task_id is not None and (not isinstance(task_id, str) or not task_id.strip()):
            raise bad_request("task_id must be a task id", "task_id")
        purged = await self._client(request).purge_dead_letters(None if every else str(task_id).strip())
        return JSONResponse({"purged_count": purged})

    async def tools(self, request: Request) -> Response:
        tools = await self._client(request).list_tools()
        return JSONResponse({"tools": [as_json(t) for t in tools]})

    async def memory(self, request: Request) -> Response:
        found = await self._client(request).memory_usage(
            tenant_id=request.query_params.get("tenant", "").strip(),
            user_id=request.query_params.get("user", "").strip(),
        )
        # Counts as numbers (the JSON mapping writes 64-bit integers as strings), zeros included.
        usage = found.usage
        return JSONResponse(
            {
                "tenant": found.tenant_id,
                "layers": [
                    {"layer": "short_term", "store": usage.short_term.store, "items": usage.short_term.items},
                    {"layer": "long_term", "store": usage.long_term.store, "items": usage.long_term.items},
                    {"layer": "structured", "store": usage.structured.store, "items": usage.structured.items},
                ],
                "sessions": usage.sessions,
            }
        )

    async def health(self, request: Request) -> Response:
        ready = await self._gateway.ready()
        return JSONResponse({"gateway": {"address": self._gateway.address, "ready": ready}})
