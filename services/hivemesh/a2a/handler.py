"""The A2A request handler: A2A's operations as calls to the gateway. It keeps no state between
requests; tasks, their events and the resume cursor all live in the gateway's durable task log, so
any replica, or one restarted in between, can serve any request."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import RequestHandler, validate_request_params
from a2a.types import a2a_pb2 as a2a
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    UnsupportedOperationError,
)

from hivemesh.a2a.gateway import Credentials, TaskGateway, credentials_of
from hivemesh.a2a.mapping import Event, Replay, task_of, text_of
from hivemesh.a2a.push import PushNotifier
from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import Task, TaskState
from hivemesh.tasks.projection import is_terminal

# The header that carries the resume cursor: the ``metadata.hivemesh.sequence`` of the last event
# a client saw (the name SSE gives the same thing). gRPC callers send it as metadata.
CURSOR_HEADER = "last-event-id"
# Who a task is for when the message names no ``userId`` in its metadata.
DEFAULT_USER = "a2a"


def _headers(context: ServerCallContext) -> Mapping[str, str]:
    """The caller's request headers (HTTP) or metadata (gRPC), with lower-case names."""
    headers = context.state.get("headers")
    if isinstance(headers, Mapping):
        return {str(k).lower(): str(v) for k, v in headers.items()}
    grpc_context = context.state.get("grpc_context")
    metadata = grpc_context.invocation_metadata() if grpc_context is not None else None
    return {str(k).lower(): v for k, v in metadata or () if isinstance(v, str)}


def _credentials(context: ServerCallContext) -> Credentials:
    return credentials_of(_headers(context))


def _cursor(context: ServerCallContext) -> int | None:
    raw = _headers(context).get(CURSOR_HEADER, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidParamsError(
            f"the {CURSOR_HEADER} header must be a sequence number (a whole number >= 0)",
            {"field": CURSOR_HEADER},
        )
    return int(raw)


def _user(message: a2a.Message) -> str:
    given = message.metadata.fields.get("userId")
    if given is not None and given.WhichOneof("kind") == "string_value" and given.string_value:
        return given.string_value
    return DEFAULT_USER


ExtendedCard = Callable[[Credentials], Awaitable[a2a.AgentCard]]


class GatewayRequestHandler(RequestHandler):
    def __init__(
        self,
        gateway: TaskGateway,
        push: PushNotifier | None = None,
        *,
        extended_card: ExtendedCard | None = None,
    ) -> None:
        self._gateway = gateway
        self._push = push
        self._extended_card = extended_card

    def _notifier(self) -> PushNotifier:
        if self._push is None:
            raise PushNotificationNotSupportedError
        return self._push

    async def _start(self, params: a2a.SendMessageRequest, context: ServerCallContext) -> Task:
        """Submit the message as a new task, or, when it names a task, as the answer to the
        question that task asks. The message id is the idempotency key: the same message sent
        twice makes one task."""
        message = params.message
        text = text_of(message)
        if not text.strip():
            raise InvalidParamsError("the message needs a text part", {"field": "message.parts"})
        request_id = message.message_id or uuid.uuid4().hex
        credentials = _credentials(context)
        if message.task_id:
            task = await self._gateway.answer(credentials, message.task_id, request_id, text)
            if self._push is not None:
                await self._push.resume(task.task_id)
        else:
            scope = Scope(
                tenant_id=params.tenant,
                user_id=_user(message),
                session_id=message.context_id or uuid.uuid4().hex,
            )
            task = await self._gateway.submit(credentials, request_id, text, scope)
        if params.configuration.HasField("task_push_notification_config"):
            config = a2a.TaskPushNotificationConfig()
            config.CopyFrom(params.configuration.task_push_notification_config)
            config.task_id = task.task_id
            await self._notifier().register(credentials, config, task.last_sequence)
        return task

    async def _events(
        self, credentials: Credentials, task_id: str, after_sequence: int
    ) -> AsyncGenerator[Event]:
        replay = Replay(after_sequence)
        async for event in self._gateway.watch(credentials, task_id, 0):
            for converted in replay.add(event):
                yield converted

    @validate_request_params
    async def on_message_send(
        self, params: a2a.SendMessageRequest, context: ServerCallContext
    ) -> a2a.Task | a2a.Message:
        task = await self._start(params, context)
        history = (
            params.configuration.history_length if params.configuration.HasField("history_length") else None
        )
        if params.configuration.return_immediately:
            return task_of(task, history)
        credentials = _credentials(context)
        # Blocking: wait until the task ends or asks a question, where the gateway's watch ends. It
        # starts from the first event because only an event can tell the watch that the task has
        # paused: one started after the last event of a task already waiting would wait on.
        async for _ in self._gateway.watch(credentials, task.task_id, 0):
            pass
        return task_of(await self._gateway.get(credentials, task.task_id), history)

    @validate_request_params
    async def on_message_send_stream(
        self, params: a2a.SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        task = await self._start(params, context)
        yield task_of(task)
        async for event in self._events(_credentials(context), task.task_id, task.last_sequence):
            yield event

    @validate_request_params
    async def on_subscribe_to_task(
        self, params: a2a.SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        """Without a cursor: the task as it is now, then its events from there. With one: the
        events after it, exactly the rest of the stream the client was reading, even when the task
        has ended since."""
        credentials = _credentials(context)
        after = _cursor(context)
        task = await self._gateway.get(credentials, params.id)
        if after is None:
            if is_terminal(task.state):
                raise UnsupportedOperationError(
                    f"task {task.task_id} has ended ({TaskState.Name(task.state)}); send "
                    f"{CURSOR_HEADER} to read the events after one you saw",
                    {"taskId": task.task_id},
                )
            yield task_of(task)
            after = task.last_sequence
        elif after > task.last_sequence:
            raise InvalidParamsError(
                f"{CURSOR_HEADER} {after} is beyond the task's last event ({task.last_sequence})",
                {"field": CURSOR_HEADER, "lastSequence": task.last_sequence},
            )
        async for event in self._events(credentials, task.task_id, after):
            yield event

    @validate_request_params
    async def on_get_task(self, params: a2a.GetTaskRequest, context: ServerCallContext) -> a2a.Task | None:
        task = await self._gateway.get(_credentials(context), params.id)
        return task_of(task, params.history_length if params.HasField("history_length") else None)

    @validate_request_params
    async def on_cancel_task(
        self, params: a2a.CancelTaskRequest, context: ServerCallContext
    ) -> a2a.Task | None:
        task = await self._gateway.cancel(_credentials(context), params.id)
        if task.state != TaskState.TASK_STATE_CANCELED:
            raise TaskNotCancelableError(
                f"task {task.task_id} has already ended ({TaskState.Name(task.state)})",
                {"taskId": task.task_id},
            )
        return task_of(task)

    async def on_list_tasks(
        self, params: a2a.ListTasksRequest, context: ServerCallContext
    ) -> a2a.ListTasksResponse:
        raise UnsupportedOperationError("listing tasks is not offered over A2A; use ListTasks on the gateway")

    async def on_create_task_push_notification_config(
        self, params: a2a.TaskPushNotificationConfig, context: ServerCallContext
    ) -> a2a.TaskPushNotificationConfig:
        return await self._notifier().register(_credentials(context), params)

    async def on_get_task_push_notification_config(
        self, params: a2a.GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> a2a.TaskPushNotificationConfig:
        return await self._notifier().get(_credentials(context), params.task_id, params.id)

    async def on_list_task_push_notification_configs(
        self, params: a2a.ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> a2a.ListTaskPushNotificationConfigsResponse:
        configs = await self._notifier().list(_credentials(context), params.task_id)
        return a2a.ListTaskPushNotificationConfigsResponse(configs=configs)

    async def on_delete_task_push_notification_config(
        self, params: a2a.DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        await self._notifier().delete(_credentials(context), params.task_id, params.id)

    async def on_get_extended_agent_card(
        self, params: a2a.GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> a2a.AgentCard:
        """The card with the skills the caller's credentials may see (the live tool catalogue)."""
        if self._extended_card is None:
            raise ExtendedAgentCardNotConfiguredError
        return await self._extended_card(_credentials(context))
