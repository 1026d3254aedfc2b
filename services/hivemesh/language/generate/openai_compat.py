"""A backend for any server speaking the OpenAI chat completions API with streaming.

Failures map to domain errors the planner can act on: a server that cannot be reached, answers
5xx or cuts the stream off is UNAVAILABLE (retryable); a 429 with ``Retry-After`` is
RESOURCE_EXHAUSTED with that delay; other 4xx answers carry the server's message. A stream that
ends before ``[DONE]`` or a finish reason is never reported as a finished reply: what arrived is
yielded, then ``LLM_STREAM_INTERRUPTED`` is raised.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
from opentelemetry import trace

from hivemesh.language.generate.config import LLMConfig
from hivemesh.language.generate.tokens import count_prompt_tokens, count_tokens
from hivemesh.language.generate.wire import FINISH_REASONS, ToolCallAssembler, request_body
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.mesh import genai, telemetry
from hivemesh.mesh.errors import (
    FailedPrecondition,
    HivemeshError,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from hivemesh.mesh.metrics import Metrics

_MAX_ERROR_CHARS = 500


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _upstream_message(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return text[:_MAX_ERROR_CHARS] or "no message"
    error = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or json.dumps(error)
    else:
        message = str(error)
    return str(message)[:_MAX_ERROR_CHARS]


def http_error(status: int, headers: httpx.Headers, body: bytes) -> HivemeshError:
    """The domain error for an HTTP error answer of the model server."""
    message = _upstream_message(body)
    metadata = {"http_status": str(status)}
    text = f"the model server answered {status}: {message}"
    if status == 429:
        delay = retry_after_seconds(headers.get("retry-after"))
        if delay is not None:
            return ResourceExhausted(text, retry_after_s=delay, reason="LLM_RATE_LIMITED", metadata=metadata)
        return Unavailable(text, reason="LLM_RATE_LIMITED", metadata=metadata)
    if status >= 500 or status == 408:
        return Unavailable(text, reason="LLM_UPSTREAM_ERROR", metadata=metadata)
    if status in (401, 403):
        return FailedPrecondition(text, reason="LLM_AUTH_FAILED", metadata=metadata)
    if status == 404:
        return FailedPrecondition(text, reason="LLM_NOT_FOUND", metadata=metadata)
    if status in (400, 413, 422):
        # The conversation itself was refused (too long, bad tool schema): the caller must change it.
        return InvalidArgument(text, reason="LLM_REQUEST_REJECTED", metadata=metadata)
    return FailedPrecondition(text, reason="LLM_REQUEST_FAILED", metadata=metadata)


class OpenAICompatibleBackend:
    """Streams ``POST {base_url}/chat/completions``; one connection pool per backend."""

    def __init__(
        self,
        config: LLMConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        headers = {"Accept": "text/event-stream"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._client = httpx.AsyncClient(
            base_url=config.base_url,
            headers=headers,
            timeout=httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def generate(self, request: pb.GenerateRequest) -> AsyncGenerator[pb.GenerateResponse]:
        """Stream the reply; each call is a ``chat`` client span (GenAI conventions, with the model
        and the token usage) when spans are recorded, and is timed and its tokens counted per model."""
        body = request_body(request, self._config.model)
        model = str(body.get("model") or "")
        span = telemetry.start_span(
            f"{genai.CHAT} {model}".strip(),
            trace.SpanKind.CLIENT,
            {
                genai.OPERATION_NAME: genai.CHAT,
                genai.PROVIDER_NAME: genai.OPENAI,
                genai.REQUEST_MODEL: model,
                genai.SERVER_ADDRESS: self._client.base_url.host,
                genai.SERVER_PORT: self._client.base_url.port or _default_port(self._client.base_url.scheme),
            },
        )
        started, error_type = time.perf_counter(), ""
        tokens: tuple[int, int] | None = None
        try:
            async for message in self._generate(body, request):
                kind = message.WhichOneof("kind")
                if kind == "usage":
                    tokens = (message.usage.prompt_tokens, message.usage.completion_tokens)
                    genai.usage(span, *tokens)
                elif kind == "finish_reason":
                    span.set_attribute(genai.FINISH_REASONS, [_finish_name(message.finish_reason)])
                yield message
        except HivemeshError as exc:
            error_type = exc.reason or exc.code.name
            genai.failed(span, exc)
            raise
        except BaseException:
            error_type = "CANCELLED"
            raise
        finally:
            span.end()
            if self._metrics is not None:
                self._metrics.count_model_call(
                    genai.CHAT,
                    genai.OPENAI,
                    model,
                    time.perf_counter() - started,
                    error_type=error_type,
                    tokens=tokens if not error_type else None,
                )

    async def _generate(
        self, body: dict[str, Any], request: pb.GenerateRequest
    ) -> AsyncIterator[pb.GenerateResponse]:
        header = self._config.session_header
        headers = {header: request.session_id} if header and request.session_id else None
        try:
            async with self._client.stream(
                "POST", "/chat/completions", json=body, headers=headers
            ) as response:
                if response.status_code >= 400:
                    raise http_error(response.status_code, response.headers, await response.aread())
                async for message in _stream(response, request):
                    yield message
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise Unavailable(
                f"cannot reach the model server at {self._config.base_url}: {exc}", reason="LLM_UNREACHABLE"
            ) from exc
        except httpx.TimeoutException as exc:
            raise Unavailable(
                f"the model server at {self._config.base_url} timed out ({type(exc).__name__})",
                reason="LLM_TIMEOUT",
            ) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise Unavailable(
                f"the model server closed the stream before the reply was complete: {exc}",
                reason="LLM_STREAM_INTERRUPTED",
            ) from exc
        except httpx.HTTPError as exc:
            raise Unavailable(f"talking to the model server failed: {exc}", reason="LLM_UNAVAILABLE") from exc

    async def probe(self) -> None:
        """Raises unless the server answers ``GET {base_url}/models`` (what every OpenAI-compatible
        server serves) with something other than a 5xx or 429."""
        try:
            response = await self._client.get("/models")
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"{self._config.base_url} does not answer: {exc}", reason="LLM_UNREACHABLE"
            ) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise http_error(response.status_code, response.headers, response.content)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _finish_name(reason: int) -> str:
    """``stop``, ``tool_calls``...: the finish reason as the OpenAI API names it."""
    return pb.FinishReason.Name(reason).removeprefix("FINISH_REASON_").lower()  # type: ignore[arg-type]


def _chunk(line: str) -> dict[str, Any] | None:
    """The JSON of one ``data:`` line; None for comments, other fields and blank lines."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if not payload:
        return None
    try:
        parsed = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise Unavailable(
            f"the model server sent malformed data: {payload[:200]}", reason="LLM_BAD_STREAM"
        ) from exc
    if not isinstance(parsed, dict):
        raise Unavailable("the model server sent a non-object chunk", reason="LLM_BAD_STREAM")
    return parsed


async def _stream(
    response: httpx.Response, request: pb.GenerateRequest
) -> AsyncIterator[pb.GenerateResponse]:
    calls = ToolCallAssembler()
    finish: str | None = None
    done = False
    usage: dict[str, Any] | None = None
    text_parts: list[str] = []
    async for line in response.aiter_lines():
        if line.strip() == "data: [DONE]" or line.strip() == "data:[DONE]":
            done = True
            break
        chunk = _chunk(line)
        if chunk is None:
            continue
        if "error" in chunk:
            # Some servers report failures mid-stream as a data line.
            raise Unavailable(
                f"the model server failed mid-stream: {_upstream_message(json.dumps(chunk).encode())}",
                reason="LLM_UPSTREAM_ERROR",
            )
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                text_parts.append(content)
                yield pb.GenerateResponse(text_delta=content)
            if delta.get("tool_calls"):
                calls.add(delta["tool_calls"])
            if choice.get("finish_reason"):
                finish = str(choice["finish_reason"])
    if not done and finish is None:
        raise Unavailable(
            "the model server closed the stream before the reply was complete",
            reason="LLM_STREAM_INTERRUPTED",
        )
    for call in calls.complete():
        yield pb.GenerateResponse(tool_call=call)
    prompt = int(usage.get("prompt_tokens") or 0) if usage else count_prompt_tokens(request)
    completion = int(usage.get("completion_tokens") or 0) if usage else count_tokens("".join(text_parts))
    yield pb.GenerateResponse(usage=pb.Usage(prompt_tokens=prompt, completion_tokens=completion))
    reason = FINISH_REASONS.get(finish or "stop", pb.FINISH_REASON_STOP)
    if calls and reason == pb.FINISH_REASON_STOP:
        # Some servers say "stop" after tool calls; the calls are what the caller must act on.
        reason = pb.FINISH_REASON_TOOL_CALLS
    yield pb.GenerateResponse(finish_reason=reason)
