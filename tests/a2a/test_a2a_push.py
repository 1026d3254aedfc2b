"""Push notifications to a webhook: every event after the registration, in order, signed, retried
until the webhook takes it."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from a2a.types import a2a_pb2 as a2a
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hivemesh.a2a.push import EVENT_ID_HEADER, SIGNATURE_HEADER, sign, verify
from hivemesh.client import HivemeshClient
from hivemesh.common.v1.task_pb2 import TaskState
from tests.a2a.harness import Ports, a2a_client, serve_a2a, serve_asgi, text_message
from tests.support import RunningMesh

TOKEN = "a-secret-only-the-registrant-and-hivemesh-know"


class Webhook:
    """Takes a notification on its second delivery only, so that every one is retried."""

    def __init__(self) -> None:
        self.tries: Counter[str] = Counter()
        self.taken: list[tuple[str, dict[str, Any]]] = []
        self.forged = 0
        self.changed = asyncio.Event()
        self.app = Starlette(routes=[Route("/hook", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        if not verify(TOKEN, request.headers.get(SIGNATURE_HEADER, ""), body):
            self.forged += 1
            return Response(status_code=401)
        event_id = request.headers[EVENT_ID_HEADER]
        self.tries[event_id] += 1
        if self.tries[event_id] == 1:
            return Response(status_code=503)
        self.taken.append((event_id, json.loads(body)))
        self.changed.set()
        return Response(status_code=204)

    def _has(self, state: str) -> bool:
        return any(
            body.get("statusUpdate", {}).get("status", {}).get("state") == state for _, body in self.taken
        )

    async def until(self, state: str) -> None:
        async with asyncio.timeout(30):
            while not self._has(state):
                self.changed.clear()
                await self.changed.wait()


def test_signatures_bind_the_body_and_the_time() -> None:
    body = b'{"statusUpdate": {}}'
    now = int(time.time())
    header = sign(TOKEN, now, body)
    assert verify(TOKEN, header, body)
    assert not verify(TOKEN, header, body + b" ")
    assert not verify("another token", header, body)
    assert not verify(TOKEN, sign(TOKEN, now - 3600, body), body)
    assert not verify(TOKEN, "t=x,v1=y", body)


async def test_webhooks_get_every_event_at_least_once(mesh: RunningMesh) -> None:
    webhook = Webhook()
    async with (
        serve_asgi(webhook.app) as hook_url,
        serve_a2a(mesh.address("gateway")) as url,
        a2a_client(url, streaming=False) as client,
    ):
        request = text_message("convert 10 miles")
        request.configuration.task_push_notification_config.url = f"{hook_url}/hook"
        request.configuration.task_push_notification_config.token = TOKEN
        [response] = [r async for r in client.send_message(request)]
        task = response.task
        assert task.status.state == a2a.TASK_STATE_INPUT_REQUIRED
        await webhook.until("TASK_STATE_INPUT_REQUIRED")
        [config] = (
            await client.list_task_push_notification_configs(
                a2a.ListTaskPushNotificationConfigsRequest(task_id=task.id)
            )
        ).configs
        assert config.url == f"{hook_url}/hook"
        got = await client.get_task_push_notification_config(
            a2a.GetTaskPushNotificationConfigRequest(task_id=task.id, id=config.id)
        )
        assert got.id == config.id
        # The answer continues the task, and the notifications with it.
        [response] = [r async for r in client.send_message(text_message("km", task_id=task.id))]
        assert response.task.status.state == a2a.TASK_STATE_COMPLETED
        await webhook.until("TASK_STATE_COMPLETED")
        await client.delete_task_push_notification_config(
            a2a.DeleteTaskPushNotificationConfigRequest(task_id=task.id, id=config.id)
        )
        left = await client.list_task_push_notification_configs(
            a2a.ListTaskPushNotificationConfigsRequest(task_id=task.id)
        )
        assert list(left.configs) == []
    ids = [event_id for event_id, _ in webhook.taken]
    # Every event after the submission, each taken once, in order, each after a failed first try.
    assert ids == [f"{task.id}:{n}" for n in range(2, len(ids) + 2)]
    assert set(webhook.tries.values()) == {2}
    assert webhook.forged == 0
    assert webhook.taken[-1][1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_registrations_survive_a_restart_of_the_door(mesh: RunningMesh, tmp_path: Path) -> None:
    """A webhook registered with one A2A process gets the events logged while none ran, from the
    process started after it, each once and in order."""
    webhook = Webhook()
    push_db = tmp_path / "a2a.db"
    ports = Ports()
    async with serve_asgi(webhook.app) as hook_url:
        async with (
            serve_a2a(mesh.address("gateway"), ports=ports, push_db=push_db) as url,
            a2a_client(url, streaming=False) as client,
        ):
            request = text_message("convert 10 miles")
            request.configuration.task_push_notification_config.url = f"{hook_url}/hook"
            request.configuration.task_push_notification_config.token = TOKEN
            [response] = [r async for r in client.send_message(request)]
            task = response.task
            assert task.status.state == a2a.TASK_STATE_INPUT_REQUIRED
            await webhook.until("TASK_STATE_INPUT_REQUIRED")
        before = len(webhook.taken)
        # No A2A process runs: the task goes on through the gateway and ends.
        async with HivemeshClient(mesh.address("gateway")) as gateway:
            await gateway.answer(task.id, "km")
            async for _ in gateway.follow(task.id, timeout_s=30):
                pass
            assert (await gateway.get(task.id)).state == TaskState.TASK_STATE_COMPLETED
        assert len(webhook.taken) == before
        async with serve_a2a(mesh.address("gateway"), ports=ports, push_db=push_db):
            await webhook.until("TASK_STATE_COMPLETED")
    ids = [event_id for event_id, _ in webhook.taken]
    assert len(ids) > before
    assert ids == [f"{task.id}:{n}" for n in range(2, len(ids) + 2)]
    assert set(webhook.tries.values()) == {2}
