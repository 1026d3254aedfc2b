"""The OpenAI-compatible door, with the official openai client, against a real mesh."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from hivemesh.edge.config import EdgeConfig
from hivemesh.mesh.config import Settings
from tests.edge.conftest import ServedEdge, serve_edge
from tests.support import keys_for

MODEL = "hivemesh"


def client(edge: ServedEdge, api_key: str = "none", **headers: str) -> AsyncOpenAI:
    return AsyncOpenAI(
        base_url=f"{edge.url}/v1", api_key=api_key, max_retries=0, default_headers=headers or None
    )


async def test_a_completion_answers_with_usage(edge: ServedEdge) -> None:
    async with client(edge) as openai_client:
        raw = await openai_client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "what is 12 * (3 + 4)?"}]
        )
    completion = raw.parse()
    assert completion.choices[0].message.content == "84"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.id == f"chatcmpl-{raw.headers['x-hivemesh-task-id']}"
    assert completion.model == MODEL
    assert completion.usage is not None
    # ceil(21 chars / 4) + 4 for the message; ceil(2 / 4) for the answer.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10, 1)
    assert completion.usage.total_tokens == 11
    assert raw.headers["x-hivemesh-session"].startswith("chat-")


async def test_a_streamed_completion_arrives_in_chunks_and_ends(edge: ServedEdge) -> None:
    async with client(edge) as openai_client:
        stream = await openai_client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "convert 5 miles to km"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "8.047" in text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == -(-len(text) // 4)
    assert len({c.id for c in chunks}) == 1


async def test_the_raw_stream_ends_with_done(edge: ServedEdge) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "what is 2 + 2?"}], "stream": True}
    async with httpx.AsyncClient(base_url=edge.url, timeout=30) as http:
        response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    data = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert "4" in "".join(json.loads(d)["choices"][0]["delta"].get("content", "") for d in data[:-1])


async def test_a_two_turn_conversation_answers_the_agents_question(edge: ServedEdge) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "how do you spell"}]
    async with client(edge, **{"X-Hivemesh-User": "ana"}) as openai_client:
        first = await openai_client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
        question = first.parse().choices[0].message.content
        assert first.headers["x-hivemesh-task-state"] == "input_required"
        assert question
        messages += [{"role": "assistant", "content": question}, {"role": "user", "content": "giraffe"}]
        second = await openai_client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
    # The follow-up answered the first task's question: the same task, in the same session, went on.
    assert second.parse().choices[0].message.content == "G-I-R-A-F-F-E"
    assert second.headers["x-hivemesh-task-id"] == first.headers["x-hivemesh-task-id"]
    assert second.headers["x-hivemesh-session"] == first.headers["x-hivemesh-session"]
    assert second.headers["x-hivemesh-task-state"] == "completed"


async def test_a_streamed_answer_to_the_agents_question(edge: ServedEdge) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "how do you spell"}]
    async with client(edge) as openai_client:
        asked = [
            c
            async for c in await openai_client.chat.completions.create(
                model=MODEL, messages=messages, stream=True
            )
        ]
        question = "".join(c.choices[0].delta.content or "" for c in asked if c.choices)
        assert question
        messages += [{"role": "assistant", "content": question}, {"role": "user", "content": "cat"}]
        answered = [
            c
            async for c in await openai_client.chat.completions.create(
                model=MODEL, messages=messages, stream=True
            )
        ]
    assert "".join(c.choices[0].delta.content or "" for c in answered if c.choices) == "C-A-T"
    assert answered[0].id == asked[0].id  # the same task


async def test_the_session_follows_the_conversation_or_the_header(edge: ServedEdge) -> None:
    async with client(edge) as openai_client:

        async def session(messages: list[ChatCompletionMessageParam], **headers: str) -> str:
            raw = await openai_client.chat.completions.with_raw_response.create(
                model=MODEL, messages=messages, extra_headers=headers or None
            )
            return raw.headers["x-hivemesh-session"]

        opening: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "what is 1 + 1?"},
        ]
        follow_up: list[ChatCompletionMessageParam] = [
            {"role": "assistant", "content": "2"},
            {"role": "user", "content": "what is 2 + 2?"},
        ]
        first = await session(opening)
        later = await session(opening + follow_up)
        other = await session([{"role": "user", "content": "what is 3 + 3?"}])
        named = await session(opening, **{"X-Hivemesh-Session": "trip-1"})
    assert first == later
    assert other != first
    assert named == "trip-1"


async def test_models_lists_the_agent(edge: ServedEdge) -> None:
    async with client(edge) as openai_client:
        models = [m.id async for m in openai_client.models.list()]
        assert models == [MODEL]
        assert (await openai_client.models.retrieve(MODEL)).id == MODEL
        with pytest.raises(openai.NotFoundError) as missing:
            await openai_client.models.retrieve("gpt-4o")
    assert missing.value.code == "model_not_found"


BAD_REQUESTS: list[tuple[object, str | None]] = [
    ({"model": MODEL, "messages": []}, "messages"),
    (
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}],
        },
        "messages",
    ),
    ({"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    (
        {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        "messages[0].content[0]",
    ),
    ({"model": MODEL, "messages": [{"role": "user", "content": "   "}]}, "messages[0].content"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x" * 20000}]}, "messages"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 3}, "n"),
    (
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]},
        "tools",
    ),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "user": "no spaces allowed"}, "user"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    (["not", "an", "object"], None),
]


async def test_bad_input_is_400_in_the_openai_shape(edge: ServedEdge) -> None:
    async with httpx.AsyncClient(base_url=edge.url, timeout=30) as http:
        for body, param in BAD_REQUESTS:
            response = await http.post("/v1/chat/completions", json=body)
            assert response.status_code == 400, (body, response.text)
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["type"] == "invalid_request_error"
            assert error["param"] == param, (body, error)
            assert error["message"]
    # The same through the openai client: its BadRequestError carries the shape.
    async with client(edge) as openai_client:
        with pytest.raises(openai.BadRequestError) as refused:
            await openai_client.chat.completions.create(
                model=MODEL, messages=[{"role": "assistant", "content": "hi"}]
            )
    assert refused.value.param == "messages"


async def test_malformed_and_oversized_bodies_are_refused(settings: Settings) -> None:
    async with (
        serve_edge(settings, EdgeConfig(port=0, max_body_bytes=4096)) as edge,
        httpx.AsyncClient(base_url=edge.url, timeout=30) as http,
    ):
        broken = await http.post(
            "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert broken.status_code == 400
        assert broken.json()["error"]["type"] == "invalid_request_error"

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 1000

        huge = await http.post("/v1/chat/completions", content=b"x" * 5000)
        assert huge.status_code == 413
        assert huge.json()["error"]["code"] == "request_too_large"
        streamed = await http.post("/v1/chat/completions", content=chunked())  # no Content-Length
        assert streamed.status_code == 413
        missing = await http.get("/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found_error"


async def test_health_and_readiness(edge: ServedEdge) -> None:
    async with httpx.AsyncClient(base_url=edge.url, timeout=30) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        await edge.mesh.stop()
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 503
        down = await http.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        )
    assert down.status_code == 503
    assert down.json()["error"]["type"] == "service_unavailable_error"


async def test_credentials_pass_through_to_the_gateway(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEMESH_AUTH", "required")
    (key,) = await keys_for(settings, "acme")
    async with serve_edge(settings) as edge:
        async with client(edge) as anonymous:
            with pytest.raises(openai.AuthenticationError) as refused:
                await anonymous.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": "what is 2 + 2?"}],
                    extra_headers={"Authorization": openai.omit},  # no credentials at all
                )
        assert refused.value.status_code == 401
        assert refused.value.code == "credentials_missing"
        assert refused.value.type == "authentication_error"
        async with client(edge, api_key="hmk_bogus_key") as wrong:
            with pytest.raises(openai.AuthenticationError) as bad_key:
                await wrong.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert bad_key.value.code == "api_key_invalid"
        async with client(edge, api_key=key) as acme:
            completion = await acme.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "what is 2 + 2?"}]
            )
        assert completion.choices[0].message.content == "4"


async def test_a_tenant_over_its_rate_limit_gets_429_with_retry_after(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEMESH_AUTH", "required")
    monkeypatch.setenv("HIVEMESH_RATE_LIMIT", "0.2")
    monkeypatch.setenv("HIVEMESH_RATE_LIMIT_BURST", "1")
    (key, other) = await keys_for(settings, "acme", "globex")
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "what is 2 + 2?"}]
    async with serve_edge(settings) as edge, client(edge, api_key=key) as acme:
        await acme.chat.completions.create(model=MODEL, messages=messages)
        with pytest.raises(openai.RateLimitError) as limited:
            await acme.chat.completions.create(model=MODEL, messages=messages)
        with pytest.raises(openai.RateLimitError) as limited_stream:
            await acme.chat.completions.create(model=MODEL, messages=messages, stream=True)
        async with client(edge, api_key=other) as globex:
            assert (await globex.chat.completions.create(model=MODEL, messages=messages)).choices
    response = limited.value.response
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 5
    assert limited.value.code == "rate_limited"
    assert limited.value.type == "rate_limit_error"
    assert limited_stream.value.status_code == 429
