"""The edge's pieces without a mesh: what a caller's headers become, how a chat request is read,
which text of a task's answer may be streamed, and how errors become HTTP statuses."""

from __future__ import annotations

import pytest

from hivemesh.client import API_KEY_PREFIX
from hivemesh.common.v1.task_pb2 import Task, TaskError, TaskEvent, TaskState
from hivemesh.edge.callers import caller_from_env, caller_from_headers
from hivemesh.edge.chat import parse_chat, session_for
from hivemesh.edge.config import EdgeConfig
from hivemesh.edge.conversation import Progress, Usage
from hivemesh.edge.errors import HttpError, from_task
from hivemesh.gateway.keys import PREFIX
from hivemesh.mesh.config import ConfigError


def test_an_api_key_as_bearer_token_becomes_x_api_key() -> None:
    assert f"{PREFIX}_" == API_KEY_PREFIX
    assert caller_from_headers({"authorization": "Bearer hmk_abc_def"}).metadata == (
        ("x-api-key", "hmk_abc_def"),
    )
    assert caller_from_headers({"authorization": "bearer eyJ.a.b"}).metadata == (
        ("authorization", "Bearer eyJ.a.b"),
    )
    assert caller_from_headers({"x-api-key": "hmk_1_2", "authorization": "Bearer x"}).metadata == (
        ("x-api-key", "hmk_1_2"),
    )
    assert caller_from_headers({"authorization": "Basic dXNlcg=="}).metadata == (
        ("authorization", "Basic dXNlcg=="),
    )
    anonymous = caller_from_headers({})
    assert (anonymous.metadata, anonymous.user_id, anonymous.session_id) == ((), "default", None)
    named = caller_from_headers({"x-hivemesh-user": "ana", "x-hivemesh-session": "s1"})
    assert (named.user_id, named.session_id) == ("ana", "s1")
    local = caller_from_env({"HIVEMESH_TOKEN": "jwt", "HIVEMESH_USER": "bo"})
    assert (local.metadata, local.user_id) == ((("authorization", "Bearer jwt"),), "bo")


def test_a_chat_request_is_read_into_one_turn() -> None:
    chat = parse_chat(
        {
            "model": "hivemesh",
            "messages": [
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "how do "}, {"type": "text", "text": "you spell"}],
                },
                {"role": "assistant", "content": "Which word?"},
                {"role": "user", "content": "cat"},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0.2,
            "user": "ana",
        }
    )
    assert (chat.text, chat.last_reply, chat.stream, chat.include_usage, chat.user) == (
        "cat",
        "Which word?",
        True,
        True,
        "ana",
    )
    opening = parse_chat(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "how do you spell"},
            ],
        }
    ).opening
    assert chat.opening == opening
    assert session_for("ana", opening) == session_for("ana", chat.opening)
    assert session_for("bo", opening) != session_for("ana", opening)


def test_a_bad_chat_request_names_its_parameter() -> None:
    with pytest.raises(HttpError) as refused:
        parse_chat({"model": "m", "messages": [{"role": "user", "content": 7}]})
    assert (refused.value.status, refused.value.param) == (400, "messages[0].content")
    with pytest.raises(HttpError) as refused:
        parse_chat(
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_object"},
            }
        )
    assert refused.value.param == "response_format"


def _delta(text: str, attempt: int) -> TaskEvent:
    event = TaskEvent(task_id="t", attempt=attempt)
    event.answer_delta.text = text
    return event


def _completed(answer: str) -> TaskEvent:
    event = TaskEvent(task_id="t")
    event.completed.answer = answer
    return event


def test_only_text_that_stays_the_start_of_the_answer_is_streamed() -> None:
    progress = Progress()
    assert progress.add(_delta(" Hello", 1)) == "Hello"  # leading space held back
    assert progress.add(_delta(" wor", 1)) == " wor"
    # A second attempt starts over: what it repeats is not sent again, what it adds is.
    assert progress.add(_delta("Hello wor", 2)) == ""
    assert progress.add(_delta("ld ", 2)) == "ld "
    assert progress.add(_delta(" late", 1)) == ""  # a superseded attempt's late delta
    progress.add(_completed("Hello world"))
    assert progress.paused
    assert progress.rest() == ""


def test_a_later_attempt_that_answers_otherwise_is_detected() -> None:
    progress = Progress()
    progress.add(_delta("Heads", 1))
    assert progress.add(_delta("Tails", 2)) == ""
    progress.add(_completed("Tails"))
    assert progress.rest() is None
    no_deltas = Progress()
    no_deltas.add(_completed("84"))
    assert no_deltas.rest() == "84"


def test_usage_counts_as_memory_counts_turns() -> None:
    usage = Usage.of("what is 2 + 2?", "4")
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (8, 1, 9)


def test_a_failed_task_keeps_its_status() -> None:
    failed = Task(
        task_id="t",
        state=TaskState.TASK_STATE_FAILED,
        error=TaskError(code=4, reason="DEADLINE_EXCEEDED", message="too slow"),
    )
    assert (from_task(failed).status, from_task(failed).code) == (504, "deadline_exceeded")
    invalid = Task(state=TaskState.TASK_STATE_FAILED, error=TaskError(code=3, reason="BAD", message="no"))
    assert from_task(invalid).status == 400
    assert from_task(Task(state=TaskState.TASK_STATE_CANCELED)).status == 409
    busy = HttpError(429, "slow down", retry_after_s=0.2)
    assert busy.headers() == {"retry-after": "1"}


def test_edge_config() -> None:
    assert EdgeConfig.from_env({}).port == 8080
    assert EdgeConfig.from_env({"HIVEMESH_EDGE_PORT": "off"}).port is None
    assert EdgeConfig.from_env({"HIVEMESH_EDGE_MAX_BODY_BYTES": "4096"}).max_body_bytes == 4096
    with pytest.raises(ConfigError, match="HIVEMESH_EDGE_PORT"):
        EdgeConfig.from_env({"HIVEMESH_EDGE_PORT": "http"})
    with pytest.raises(ConfigError, match="HIVEMESH_EDGE_MODEL"):
        EdgeConfig.from_env({"HIVEMESH_EDGE_MODEL": "two words"})
