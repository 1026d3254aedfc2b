"""The OpenAI-compatible door: ``POST /v1/chat/completions`` (streamed or not) and ``GET /v1/models``.

A chat request is one turn of a conversation with the agent (see conversation.py):

- **Text.** The last message must be the user's; its text is the task's text.
- **Session.** ``X-Hivemesh-Session`` when given; otherwise ``chat-`` and a hash of the user and
  the conversation's opening (its messages up to and including the first user message), so every
  request of one conversation lands in one session and a new conversation starts a new one.
- **Earlier messages.** Not sent again: the mesh keeps the session's turns itself and the planner
  reads them. When the agent's last reply was a question (the task waits for input), the new
  message answers that task instead of starting another.
- **User.** The request's ``user`` field, else ``X-Hivemesh-User``, else ``default``.
- **Idempotency.** ``Idempotency-Key`` becomes the task's request id: a retry gets the same task.
- **Usage.** Estimated as memory counts turns (conversation.Usage): the message sent (ceil(chars/4)
  + 4) and the reply (ceil(chars/4)). The built-in planner uses no model, so there is no model
  count to report.
- **Ignored parameters.** Sampling and length settings (temperature, max_tokens, ...) have no
  effect: the agent composes its own reply. ``tools``, ``n`` > 1 and non-text content are refused.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hivemesh.common.v1.task_pb2 import TaskEvent, TaskState
from hivemesh.edge.callers import caller_from_headers
from hivemesh.edge.conversation import Progress, Turn, Usage
from hivemesh.edge.errors import HttpError, bad_request, from_rpc_error, from_task
from hivemesh.edge.gateway import GatewayLink

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# Fields of the gateway's requests, as the OpenAI request names them.
_PARAMS: Mapping[str, str] = {
    "text": "messages",
    "scope.user_id": "user",
    "scope.session_id": "X-Hivemesh-Session",
    "request_id": "Idempotency-Key",
}
SESSION_PREFIX = "chat-"
# Comment lines on an idle stream so proxies do not close it while the agent works.
_PING_S = 15


@dataclass(frozen=True)
class ChatRequest:
    model: str
    # The last user message's text.
    text: str
    # The conversation's opening (messages up to the first user message), canonical JSON.
    opening: str
    # The assistant's message just before the last user message, if there is one.
    last_reply: str | None
    stream: bool
    include_usage: bool
    user: str | None


def _text(content: Any, where: str) -> str:
    """A message's content as text: a string, or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(f"{where} must be a string or a list of content parts", where)
    texts = []
    for number, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise bad_request(
                f"{where}[{number}]: only text content parts are supported", f"{where}[{number}]"
            )
        texts.append(part["text"])
    return "".join(texts)


def parse_chat(body: Any) -> ChatRequest:
    """The request's meaning, or a 400 naming the parameter that is wrong."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model is required and must be a string", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty list", "messages")
    turns: list[tuple[str, str]] = []
    for number, message in enumerate(messages):
        where = f"messages[{number}]"
        if not isinstance(message, dict):
            raise bad_request(f"{where} must be an object", where)
        role = message.get("role")
        if role not in _ROLES:
            raise bad_request(f"{where}.role must be one of {', '.join(sorted(_ROLES))}", f"{where}.role")
        turns.append((str(role), _text(message.get("content"), f"{where}.content")))
    if turns[-1][0] != "user":
        raise bad_request("the last message must be the user's", "messages")
    if not turns[-1][1].strip():
        raise bad_request("the last message has no text", f"messages[{len(turns) - 1}].content")
    first_user = next(n for n, (role, _) in enumerate(turns) if role == "user")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise bad_request("stream_options must be an object with a boolean include_usage", "stream_options")
    if body.get("n", 1) not in (1, None):
        raise bad_request("only n = 1 is supported", "n")
    if body.get("tools") or body.get("functions"):
        raise bad_request("tools are not supported: the agent uses its own (see the MCP door)", "tools")
    response_format = body.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, dict) or response_format.get("type", "text") != "text"
    ):
        raise bad_request("only the text response format is supported", "response_format")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad_request("user must be a string", "user")
    return ChatRequest(
        model=model,
        text=turns[-1][1],
        opening=json.dumps(turns[: first_user + 1], separators=(",", ":")),
        last_reply=turns[-2][1] if len(turns) > 1 and turns[-2][0] == "assistant" else None,
        stream=stream,
        include_usage=bool(options.get("include_usage", False)),
        user=user or None,
    )


def session_for(user_id: str, opening: str) -> str:
    """The session of a conversation that names none: the same opening of the same user gives the
    same session."""
    return SESSION_PREFIX + hashlib.sha256(f"{user_id}\x00{opening}".encode()).hexdigest()[:32]


def error_response(error: HttpError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers())


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


class ChatDoor:
    def __init__(self, gateway: GatewayLink, model: str) -> None:
        self._gateway = gateway
        self._model = model
        self._created = int(time.time())

    def _model_card(self) -> dict[str, Any]:
        return {"id": self._model, "object": "model", "created": self._created, "owned_by": "hivemesh"}

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self._model_card()]})

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        if name != self._model:
            return error_response(self._unknown_model(name))
        return JSONResponse(self._model_card())

    def _unknown_model(self, name: str) -> HttpError:
        return HttpError(
            404,
            f"the model {name!r} does not exist; this agent is {self._model!r}",
            code="model_not_found",
            param="model",
        )

    async def completions(self, request: Request) -> Response:
        try:
            try:
                body = json.loads(await request.body())
            except (ValueError, UnicodeDecodeError):
                raise bad_request("the request body is not valid JSON") from None
            chat = parse_chat(body)
            if chat.model != self._model:
                raise self._unknown_model(chat.model)
            caller = caller_from_headers(request.headers)
            user = chat.user or caller.user_id
            session = caller.session_id or session_for(user, chat.opening)
            turn = Turn(
                chat.text,
                user,
                session,
                after_reply=chat.last_reply,
                request_id=request.headers.get("idempotency-key") or None,
            )
            progress, events = await self._gateway.conversation(caller).run(turn)
            if chat.stream:
                return await self._stream(chat, turn, progress, events)
            async for event in events:
                progress.add(event)
        except HttpError as exc:
            return error_response(exc)
        except grpc.aio.AioRpcError as exc:
            return error_response(from_rpc_error(exc, _PARAMS))
        if not progress.paused:
            return error_response(from_task(progress.task))
        task = progress.task
        return JSONResponse(
            {
                "id": f"chatcmpl-{task.task_id}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self._model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": task.answer, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(Usage.of(turn.text, task.answer)),
            },
            headers=_task_headers(progress, session),
        )

    async def _stream(
        self, chat: ChatRequest, turn: Turn, progress: Progress, events: AsyncIterator[TaskEvent]
    ) -> Response:
        # The first event is awaited before the response starts, so that a refusal (credentials,
        # rate limit, bad input) is still an HTTP status rather than an error inside a 200 stream.
        first = await anext(events, None)
        if first is not None:
            pending = progress.add(first)
        chunks = _Chunks(progress, f"chatcmpl-{progress.task.task_id}", self._model, chat.include_usage)
        return EventSourceResponse(
            chunks.stream(turn.text, pending if first is not None else "", events),
            headers=_task_headers(progress, turn.session_id),
            sep="\n",
            ping=_PING_S,
        )


def _task_headers(progress: Progress, session: str) -> dict[str, str]:
    headers = {"x-hivemesh-session": session, "x-hivemesh-task-id": progress.task.task_id}
    if progress.task.state:
        headers["x-hivemesh-task-state"] = (
            TaskState.Name(progress.task.state).removeprefix("TASK_STATE_").lower()
        )
    return headers


class _Chunks:
    """The SSE events of one streamed completion, in OpenAI's chunk format."""

    def __init__(self, progress: Progress, completion_id: str, model: str, include_usage: bool) -> None:
        self._progress = progress
        self._id = completion_id
        self._model = model
        self._include_usage = include_usage
        self._created = int(time.time())

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> ServerSentEvent:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return ServerSentEvent(json.dumps(chunk))

    def _text(self, text: str) -> ServerSentEvent:
        return self._chunk({"content": text})

    @staticmethod
    def _error(error: HttpError) -> ServerSentEvent:
        return ServerSentEvent(json.dumps(error.body()))

    async def stream(
        self, text: str, pending: str, events: AsyncIterator[TaskEvent]
    ) -> AsyncIterator[ServerSentEvent]:
        progress = self._progress
        yield self._chunk({"role": "assistant", "content": ""})
        if pending:
            yield self._text(pending)
        try:
            async for event in events:
                piece = progress.add(event)
                if piece:
                    yield self._text(piece)
        except grpc.aio.AioRpcError as exc:
            yield self._error(from_rpc_error(exc, _PARAMS))
            return
        if not progress.paused:
            yield self._error(from_task(progress.task))
            return
        rest = progress.rest()
        if rest is None:
            yield self._error(
                HttpError(
                    502,
                    "the task was run again and answered differently from the text already streamed; "
                    f"its answer is: {progress.task.answer}",
                    "server_error",
                    "answer_changed",
                )
            )
            return
        if rest:
            yield self._text(rest)
        yield self._chunk({}, "stop")
        if self._include_usage:
            usage = _usage(Usage.of(text, progress.task.answer))
            yield ServerSentEvent(
                json.dumps(
                    {
                        "id": self._id,
                        "object": "chat.completion.chunk",
                        "created": self._created,
                        "model": self._model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        yield ServerSentEvent("[DONE]")
