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

Registrations are kept in a ``PushStore`` shared by every replica (push_store.py), with the
credentials they were made with (the deliverer of a task watches it as its registrant) and the
sequence of the last event delivered to each webhook. One replica at a time delivers a task's
events, under a lease it renews; when it stops or dies another one (or it, restarted) takes the task
over after the lease and goes on after the last event delivered: nothing is lost across a restart,
and an event whose delivery was cut off is sent again. A task that paused for input is looked at
again every ``recheck_s`` (or at once when it is answered through this door) until it ends.
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
from a2a.types import a2a_pb2 as a2a
from a2a.utils.errors import InvalidParamsError, InvalidRequestError, TaskNotFoundError
from a2a.utils.proto_utils import to_stream_response
from google.protobuf.json_format import MessageToJson

from hivemesh.a2a.gateway import Credentials, TaskGateway
from hivemesh.a2a.mapping import Event, Replay, sequence_of
from hivemesh.a2a.push_store import PushStore, Registration
from hivemesh.tasks.projection import is_terminal

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


def _refused(error: TaskNotFoundError | InvalidRequestError) -> bool:
    """Whether the gateway refused the registrant for good: the task is not theirs (any more), or
    their credentials are not accepted (revoked, expired)."""
    if isinstance(error, TaskNotFoundError):
        return True
    status = error.data.get("status") if isinstance(error.data, dict) else None
    return status in ("UNAUTHENTICATED", "PERMISSION_DENIED")


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


class PushNotifier:
    def __init__(
        self,
        gateway: TaskGateway,
        store: PushStore,
        *,
        retry: RetryPolicy | None = None,
        url_validator: UrlValidator | None = None,
        lease_s: float = 30.0,
        recheck_s: float = 10.0,
    ) -> None:
        self._gateway = gateway
        self._store = store
        self._retry = retry or RetryPolicy()
        self._url_validator = url_validator
        self._lease_s = lease_s
        self._recheck_s = recheck_s
        # This replica, as the owner of the leases it takes.
        self._owner = uuid.uuid4().hex
        self._http: httpx.AsyncClient | None = None
        # task id -> the follower delivering its events from here
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._scanner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the store and take over the deliveries no live replica holds (those of a replica
        that stopped, this one before a restart among them)."""
        await self._store.start()
        self._scanner = asyncio.create_task(self._scan())

    async def close(self) -> None:
        """Stop delivering and hand every task over (its lease released at once)."""
        running = [t for t in (self._scanner, *self._followers.values()) if t is not None]
        self._scanner = None
        followed = list(self._followers)
        self._followers.clear()
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task_id in followed:
            with contextlib.suppress(Exception):
                await self._store.release(self._owner, task_id, done=False, recheck_at=0.0)
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self._store.close()

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
        stored.task_id = task.task_id
        stored.id = config.id or uuid.uuid4().hex
        start = task.last_sequence if after_sequence is None else after_sequence
        await self._store.add(Registration(stored, credentials, start))
        await self.resume(task.task_id)
        return stored

    async def resume(self, task_id: str) -> None:
        """Deliver the task's events from here unless a replica does already: after a
        registration, and when a task that paused for input goes on."""
        running = self._followers.get(task_id)
        if running is not None and not running.done():
            return
        now = time.time()
        if await self._store.claim(task_id, self._owner, now, now + self._lease_s):
            self._followers[task_id] = asyncio.create_task(self._follow(task_id))

    async def get(
        self, credentials: Credentials, task_id: str, config_id: str
    ) -> a2a.TaskPushNotificationConfig:
        for registration in await self.list(credentials, task_id):
            if registration.id == config_id:
                return registration
        raise TaskNotFoundError(
            f"task {task_id} has no push notification config {config_id}", {"configId": config_id}
        )

    async def list(self, credentials: Credentials, task_id: str) -> list[a2a.TaskPushNotificationConfig]:
        task = await self._gateway.get(credentials, task_id)
        return [registration.config for registration in await self._store.of_task(task.task_id)]

    async def delete(self, credentials: Credentials, task_id: str, config_id: str) -> None:
        task = await self._gateway.get(credentials, task_id)
        await self._store.remove(task.task_id, config_id)

    async def _scan(self) -> None:
        """Renew the leases of the tasks followed here; take over those no live replica holds."""
        while True:
            try:
                now = time.time()
                await self._store.renew(self._owner, list(self._followers), now + self._lease_s)
                for task_id in await self._store.orphaned(now):
                    await self.resume(task_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("push notifications: the registrations could not be read")
            await asyncio.sleep(self._lease_s / 3)

    async def _follow(self, task_id: str) -> None:
        done, recheck_at = False, time.time() + self._recheck_s
        try:
            done = await self._deliver_events(task_id)
        except asyncio.CancelledError:
            raise
        except (TaskNotFoundError, InvalidRequestError) as exc:
            if _refused(exc):
                # The registrant's credentials no longer read the task (revoked, expired): give up.
                log.warning("push notifications for task %s stopped: %s", task_id, exc.message)
                done = True
            else:  # over a rate limit, say: tried again later
                log.warning("push notifications for task %s interrupted: %s", task_id, exc.message)
        except Exception:
            log.exception("push notifications for task %s interrupted; tried again later", task_id)
        finally:
            if self._followers.get(task_id) is asyncio.current_task():
                del self._followers[task_id]
        await self._store.release(self._owner, task_id, done=done, recheck_at=recheck_at)

    async def _deliver_events(self, task_id: str) -> bool:
        """Deliver the task's events not delivered yet; whether the task has ended."""
        registrations = await self._store.of_task(task_id)
        if not registrations:
            return True
        # The newest registrant's credentials: a JWT among them expires last.
        credentials = registrations[-1].credentials
        replay = Replay(min(r.delivered for r in registrations))
        async for logged in self._gateway.watch(credentials, task_id, 0):
            for event in replay.add(logged):
                # Read again for each event: a webhook added (or deleted) meanwhile, from any replica.
                targets = [r for r in await self._store.of_task(task_id) if r.delivered < logged.sequence]
                await self._deliver_all(task_id, event, [r.config for r in targets])
                await self._store.delivered(task_id, [r.config.id for r in targets], logged.sequence)
        return is_terminal((await self._gateway.get(credentials, task_id)).state)

    async def _deliver_all(
        self, task_id: str, event: Event, configs: Sequence[a2a.TaskPushNotificationConfig]
    ) -> None:
        body = MessageToJson(to_stream_response(event), indent=None).encode()
        event_id = f"{task_id}:{sequence_of(event)}"
        for config in configs:
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
