"""Push notifications: every stream event of a task, POSTed to the webhooks registered for it.

What is delivered comes from the durable task log, folded exactly as a stream is (``Replay``): each
POST carries one ``StreamResponse`` (JSON) of an event after the one the task was at when the webhook
was registered, in order. Delivery is at least once: an event is sent again, with exponential backoff
and jitter, until the webhook answers 2xx, or answers a client error other than 408 and 429 (which
retrying would not change), or ``RetryPolicy.max_attempts`` is reached. Receivers drop repeats by the
``X-Hivemesh-Event-Id`` header (``<task id>:<sequence>``).

Each POST is signed with the registration's ``token``, which the registrant chose and which is never
sent: ``X-Hivemesh-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(token, "<t>." + body)>``. A
receiver recomputes the HMAC over the raw body, compares in constant time and refuses a ``t`` more
than a few minutes away from its clock (see ``verify``).

Registrations are held in this process's memory, with the credentials they were made with (the
follower of a task watches it as its registrant): a restart forgets them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from a2a.types import a2a_pb2 as a2a
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError
from a2a.utils.proto_utils import to_stream_response
from google.protobuf.json_format import MessageToJson

from hivemesh.a2a.gateway import Credentials, TaskGateway
from hivemesh.a2a.mapping import Event, Replay, sequence_of

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hivemesh-Signature"
EVENT_ID_HEADER = "X-Hivemesh-Event-Id"
# How far a signature's time may be from the receiver's clock.
SIGNATURE_TOLERANCE_S = 300.0

UrlValidator = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    timeout_s: float = 10.0


def sign(token: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(token.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(token: str, header: str, body: bytes, *, now: float | None = None) -> bool:
    """Whether ``header`` (X-Hivemesh-Signature) signs ``body`` with ``token``, recently."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > SIGNATURE_TOLERANCE_S:
        return False
    return hmac.compare_digest(sign(token, timestamp, body), f"t={timestamp},v1={fields.get('v1', '')}")


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


class PushNotifier:
    def __init__(
        self,
        gateway: TaskGateway,
        *,
        retry: RetryPolicy | None = None,
        url_validator: UrlValidator | None = None,
    ) -> None:
        self._gateway = gateway
        self._retry = retry or RetryPolicy()
        self._url_validator = url_validator
        self._http: httpx.AsyncClient | None = None
        # task id -> config id -> config
        self._configs: dict[str, dict[str, a2a.TaskPushNotificationConfig]] = {}
        # task id -> (its follower, the credentials it watches with)
        self._followers: dict[str, tuple[asyncio.Task[None], Credentials]] = {}
        # task id -> the sequence of the last event delivered (or given up on)
        self._delivered: dict[str, int] = {}

    async def close(self) -> None:
        followers = [follower for follower, _ in self._followers.values()]
        self._followers.clear()
        for follower in followers:
            follower.cancel()
        for follower in followers:
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def register(
        self,
        credentials: Credentials,
        config: a2a.TaskPushNotificationConfig,
        after_sequence: int | None = None,
    ) -> a2a.TaskPushNotificationConfig:
        """Keep ``config`` for its task (which the caller must be able to read) and deliver the
        task's events after ``after_sequence`` (None: after the newest one now)."""
        if not config.url.startswith(("https://", "http://")):
            raise InvalidParamsError("the push notification url must be http(s)", {"field": "url"})
        if not config.token:
            raise InvalidParamsError(
                "a push notification config needs a token: it is the key notifications are signed with",
                {"field": "token"},
            )
        task = await self._gateway.get(credentials, config.task_id)
        if self._url_validator is not None and not await self._url_validator(config.url):
            raise InvalidParamsError("the push notification url is not a public address", {"field": "url"})
        stored = a2a.TaskPushNotificationConfig()
        stored.CopyFrom(config)
        stored.id = config.id or uuid.uuid4().hex
        self._configs.setdefault(task.task_id, {})[stored.id] = stored
        start = task.last_sequence if after_sequence is None else after_sequence
        self._delivered[task.task_id] = min(self._delivered.get(task.task_id, start), start)
        self.follow(credentials, task.task_id)
        return stored

    def follow(self, credentials: Credentials, task_id: str) -> None:
        """(Re)start delivering the task's events when webhooks are registered for it and no
        follower runs: after a registration, and when a task that paused for input goes on."""
        if not self._configs.get(task_id):
            return
        running = self._followers.get(task_id)
        if running is not None and not running[0].done():
            return
        follower = asyncio.create_task(self._follow(credentials, task_id))
        self._followers[task_id] = (follower, credentials)

    async def get(
        self, credentials: Credentials, task_id: str, config_id: str
    ) -> a2a.TaskPushNotificationConfig:
        await self._gateway.get(credentials, task_id)
        found = self._configs.get(task_id, {}).get(config_id)
        if found is None:
            raise TaskNotFoundError(
                f"task {task_id} has no push notification config {config_id}", {"configId": config_id}
            )
        return found

    async def list(self, credentials: Credentials, task_id: str) -> list[a2a.TaskPushNotificationConfig]:
        await self._gateway.get(credentials, task_id)
        return list(self._configs.get(task_id, {}).values())

    async def delete(self, credentials: Credentials, task_id: str, config_id: str) -> None:
        await self._gateway.get(credentials, task_id)
        self._configs.get(task_id, {}).pop(config_id, None)

    async def _follow(self, credentials: Credentials, task_id: str) -> None:
        replay = Replay(self._delivered.get(task_id, 0))
        try:
            async for logged in self._gateway.watch(credentials, task_id, 0):
                for event in replay.add(logged):
                    await self._deliver_all(task_id, event)
                    self._delivered[task_id] = logged.sequence
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("push notifications for task %s stopped", task_id)

    async def _deliver_all(self, task_id: str, event: Event) -> None:
        body = MessageToJson(to_stream_response(event), indent=None).encode()
        event_id = f"{task_id}:{sequence_of(event)}"
        for config in list(self._configs.get(task_id, {}).values()):
            await self._deliver(config, body, event_id)

    async def _deliver(self, config: a2a.TaskPushNotificationConfig, body: bytes, event_id: str) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient()
        backoff = self._retry.initial_backoff_s
        for attempt in range(1, self._retry.max_attempts + 1):
            headers = {
                "Content-Type": "application/json",
                EVENT_ID_HEADER: event_id,
                SIGNATURE_HEADER: sign(config.token, int(time.time()), body),
            }
            try:
                response = await self._http.post(
                    config.url, content=body, headers=headers, timeout=self._retry.timeout_s
                )
            except httpx.HTTPError as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return
                if not _retryable(response.status_code):
                    log.warning(
                        "webhook %s refused %s (%s); not retried", config.url, event_id, response.status_code
                    )
                    return
                outcome = f"HTTP {response.status_code}"
            if attempt < self._retry.max_attempts:
                # Full jitter keeps many followers that failed together from retrying together.
                await asyncio.sleep(random.uniform(0, backoff))  # noqa: S311 - not cryptographic
                backoff = min(self._retry.max_backoff_s, backoff * 2)
            else:
                log.warning(
                    "webhook %s: %s given up after %d attempts (%s)", config.url, event_id, attempt, outcome
                )
