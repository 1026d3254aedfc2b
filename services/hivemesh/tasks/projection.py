"""The task projection: a pure fold of a task's events into its current ``Task``."""

from __future__ import annotations

from hivemesh.common.v1 import task_pb2
from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskState

TERMINAL_STATES = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    }
)
# States after which a watcher's stream ends: terminal ones, and a question waiting for the user.
PAUSING_STATES = TERMINAL_STATES | {TaskState.TASK_STATE_INPUT_REQUIRED}


def is_terminal(state: int) -> bool:
    return state in TERMINAL_STATES


def apply(task: Task, event: TaskEvent) -> Task:
    """Return ``task`` after ``event`` (a new message; the argument is not changed)."""
    result = Task()
    result.CopyFrom(task)
    result.last_sequence = event.sequence
    result.update_time.CopyFrom(event.time)
    kind = event.WhichOneof("kind")
    if kind == "submitted":
        submitted = event.submitted
        result.task_id = event.task_id
        result.input_text = submitted.input_text
        result.scope.CopyFrom(submitted.scope)
        result.options.CopyFrom(submitted.options)
        result.request_id = submitted.request_id
        result.state = TaskState.TASK_STATE_SUBMITTED
        result.create_time.CopyFrom(event.time)
    elif kind == "state_changed":
        if event.state_changed.state == TaskState.TASK_STATE_WORKING:
            result.attempts += 1
            if event.state_changed.HasField("release"):
                result.release.CopyFrom(event.state_changed.release)
        if event.state_changed.state == TaskState.TASK_STATE_SUBMITTED:
            # Back on the queue (a dead letter replayed): the old failure no longer describes it.
            result.ClearField("error")
            result.answer = ""
        result.state = event.state_changed.state
    elif kind == "input_requested":
        result.state = TaskState.TASK_STATE_INPUT_REQUIRED
        result.answer = event.input_requested.question
    elif kind == "input_received":
        result.state = TaskState.TASK_STATE_SUBMITTED
        result.answer = ""
    elif kind == "completed":
        result.state = TaskState.TASK_STATE_COMPLETED
        result.answer = event.completed.answer
        result.ClearField("error")
    elif kind == "failed":
        result.state = TaskState.TASK_STATE_FAILED
        result.error.CopyFrom(event.failed.error)
    elif kind == "canceled":
        result.state = TaskState.TASK_STATE_CANCELED
    return result


def ends_watch(event: TaskEvent) -> bool:
    """Whether a watcher has seen the last event it should wait for."""
    kind = event.WhichOneof("kind")
    if kind in ("completed", "failed", "canceled", "input_requested"):
        return True
    return kind == "state_changed" and event.state_changed.state in PAUSING_STATES


def error(code: int, reason: str, message: str, *, retryable: bool = False) -> task_pb2.TaskError:
    return task_pb2.TaskError(code=code, reason=reason, message=message, retryable=retryable)
