"""Hivemesh tasks and their event log, in A2A's terms. Pure functions: no transport, no I/O.

Every event of a task's log becomes exactly one A2A stream event, and every stream event carries
the sequence number of the log event it was made from in ``metadata.hivemesh.sequence`` (a Task
snapshot carries the sequence of the newest event it reflects). That number is the resume cursor:
a client that hands back the last one it saw gets the events after it, and only those.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from a2a.types import a2a_pb2 as a2a
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct

from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskState
from hivemesh.tasks.projection import apply

# The one artifact of a task: its answer, streamed as ``answer_delta`` events.
ANSWER_ARTIFACT = "answer"
# The key under which stream events and tasks carry hivemesh's own data (the cursor among it).
METADATA_KEY = "hivemesh"

# The names follow A2A (see task.proto), so the mapping is one to one.
STATES: dict[int, a2a.TaskState] = {
    TaskState.TASK_STATE_UNSPECIFIED: a2a.TASK_STATE_UNSPECIFIED,
    TaskState.TASK_STATE_SUBMITTED: a2a.TASK_STATE_SUBMITTED,
    TaskState.TASK_STATE_WORKING: a2a.TASK_STATE_WORKING,
    TaskState.TASK_STATE_INPUT_REQUIRED: a2a.TASK_STATE_INPUT_REQUIRED,
    TaskState.TASK_STATE_COMPLETED: a2a.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED: a2a.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED: a2a.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED: a2a.TASK_STATE_REJECTED,
}

Event = a2a.Task | a2a.TaskStatusUpdateEvent | a2a.TaskArtifactUpdateEvent


def text_of(message: a2a.Message) -> str:
    """The text parts of a message, joined by blank lines ("" when it has none)."""
    return "\n\n".join(part.text for part in message.parts if part.WhichOneof("content") == "text")


def _message(task_id: str, context_id: str, role: a2a.Role, text: str, message_id: str) -> a2a.Message:
    return a2a.Message(
        message_id=message_id,
        task_id=task_id,
        context_id=context_id,
        role=role,
        parts=[a2a.Part(text=text)],
    )


def _metadata(sequence: int, **values: Any) -> Struct:
    metadata = Struct()
    metadata.update({METADATA_KEY: {"sequence": sequence, **values}})
    return metadata


def status_of(task: Task) -> a2a.TaskStatus:
    """The A2A status of ``task``: its state and, when there is one, what the agent says about it
    (the answer, the question it asks, or why it failed)."""
    status = a2a.TaskStatus(state=STATES[task.state], timestamp=task.update_time)
    said = task.answer
    if task.state in (TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_REJECTED) and task.error.message:
        said = task.error.message
    if said:
        status.message.CopyFrom(
            _message(
                task.task_id,
                task.scope.session_id,
                a2a.ROLE_AGENT,
                said,
                f"{task.task_id}:{task.last_sequence}",
            )
        )
    return status


def task_of(task: Task, history_length: int | None = None) -> a2a.Task:
    """``task`` as an A2A Task: its context is the hivemesh session, its history the request that
    started it, its one artifact the answer (once COMPLETED)."""
    result = a2a.Task(
        id=task.task_id,
        context_id=task.scope.session_id,
        status=status_of(task),
        metadata=_metadata(task.last_sequence, attempts=task.attempts),
    )
    if task.state == TaskState.TASK_STATE_COMPLETED:
        result.artifacts.append(
            a2a.Artifact(
                artifact_id=ANSWER_ARTIFACT, name=ANSWER_ARTIFACT, parts=[a2a.Part(text=task.answer)]
            )
        )
    if history_length != 0:
        result.history.append(
            _message(task.task_id, task.scope.session_id, a2a.ROLE_USER, task.input_text, f"{task.task_id}:1")
        )
    return result


@dataclass
class Replay:
    """Folds a task's log, from its first event, into A2A stream events, and yields those after
    ``after_sequence`` (the cursor). The fold starts at the first event even when the cursor is
    further on, because what an event means can depend on what came before it: the state it leaves
    the task in, and whether an answer chunk starts its attempt's answer or extends it."""

    after_sequence: int
    task: Task = field(default_factory=Task)
    # The attempt whose answer the artifact holds (0: none yet).
    answering: int = 0

    def add(self, event: TaskEvent) -> Iterator[Event]:
        """Take the next event of the log; yields its A2A event when it comes after the cursor."""
        self.task = apply(self.task, event)
        converted = self._convert(event)
        if event.sequence > self.after_sequence:
            yield converted

    def _convert(self, event: TaskEvent) -> Event:
        task = self.task
        kind = event.WhichOneof("kind") or ""
        if kind == "answer_delta":
            # A later attempt starts the answer over (see AnswerJoiner); a superseded attempt's late
            # chunk is left out of the artifact but still delivered, so the cursor stays whole.
            starts = event.attempt > self.answering
            superseded = 0 < event.attempt < self.answering
            self.answering = max(self.answering, event.attempt)
            return a2a.TaskArtifactUpdateEvent(
                task_id=task.task_id,
                context_id=task.scope.session_id,
                artifact=a2a.Artifact(
                    artifact_id=ANSWER_ARTIFACT,
                    name=ANSWER_ARTIFACT,
                    parts=[] if superseded else [a2a.Part(text=event.answer_delta.text)],
                ),
                append=not starts,
                last_chunk=False,
                metadata=_metadata(event.sequence, attempt=event.attempt, kind=kind),
            )
        status = status_of(task)
        if kind == "input_received":
            status.message.CopyFrom(
                _message(
                    task.task_id,
                    task.scope.session_id,
                    a2a.ROLE_USER,
                    event.input_received.text,
                    f"{task.task_id}:{event.sequence}",
                )
            )
        elif kind not in ("input_requested", "completed", "failed", "canceled"):
            # Progress (a step, a tool call, a notice): the state is unchanged and the event itself,
            # in hivemesh's JSON form, is in the metadata.
            status.ClearField("message")
        return a2a.TaskStatusUpdateEvent(
            task_id=task.task_id,
            context_id=task.scope.session_id,
            status=status,
            metadata=_metadata(
                event.sequence,
                attempt=event.attempt,
                kind=kind,
                event=MessageToDict(event, preserving_proto_field_name=False),
            ),
        )


def sequence_of(event: Event) -> int:
    """The cursor an event carries (0 when it carries none)."""
    fields = event.metadata.fields.get(METADATA_KEY)
    if fields is None or not fields.HasField("struct_value"):
        return 0
    value = fields.struct_value.fields.get("sequence")
    return int(value.number_value) if value is not None else 0
