"""``AnswerJoiner``: the answer of a task's current attempt from its events, as a watcher sees them."""

from __future__ import annotations

from hivemesh.client import AnswerJoiner
from hivemesh.common.v1.task_pb2 import TaskEvent, TaskState


def working(attempt: int) -> TaskEvent:
    event = TaskEvent(attempt=attempt)
    event.state_changed.state = TaskState.TASK_STATE_WORKING
    return event


def delta(text: str, attempt: int) -> TaskEvent:
    event = TaskEvent(attempt=attempt)
    event.answer_delta.text = text
    return event


def joined(events: list[TaskEvent]) -> tuple[AnswerJoiner, list[str]]:
    answer = AnswerJoiner()
    discarded = [answer.add(event) for event in events]
    return answer, [text for text in discarded if text]


def test_a_later_attempt_discards_the_earlier_partial_answer() -> None:
    answer, discarded = joined(
        [working(1), delta("The ", 1), delta("ans", 1), working(2), delta("The ", 2), delta("answer", 2)]
    )
    assert answer.text == "The answer"
    assert answer.attempt == 2
    assert discarded == ["The ans"]


def test_a_late_delta_of_a_superseded_attempt_is_dropped() -> None:
    # The first worker was declared dead but still ran for a moment after the takeover.
    answer, _ = joined([working(1), delta("4", 1), working(2), delta("4", 1), delta("42", 2)])
    assert answer.text == "42"


def test_a_watch_resumed_in_the_middle_of_an_attempt_joins_from_there() -> None:
    answer, discarded = joined([delta("swer", 2), delta(" is 42", 2)])
    assert answer.text == "swer is 42"
    assert discarded == []


def test_events_logged_before_attempts_were_numbered_start_one_at_each_working_change() -> None:
    answer, discarded = joined([working(0), delta("old ", 0), working(0), delta("new", 0)])
    assert answer.text == "new"
    assert answer.attempt == 2
    assert discarded == ["old "]
