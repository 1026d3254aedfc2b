"""Bad input at the A2A door gets A2A's error shape (JSON-RPC error codes, or the HTTP+JSON error
payload), never a 500; and the 0.3 method names work as the README's curl example sends them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.a2a.harness import serve_a2a
from tests.support import RunningMesh

V1 = {"A2A-Version": "1.0"}


def rpc(method: str, params: Any, request_id: object = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def message(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "message": {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": text}], **extra}
    }


async def error_of(http: httpx.AsyncClient, url: str, body: Any, **headers: str) -> dict[str, Any]:
    sent = body if isinstance(body, bytes) else None
    response = await http.post(
        url, content=sent, json=None if sent is not None else body, headers={**V1, **headers}
    )
    assert response.status_code == 200, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


async def test_the_readme_curl_example(mesh: RunningMesh) -> None:
    async with serve_a2a(mesh.address("gateway")) as url, httpx.AsyncClient(timeout=30) as http:
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "message/send",
            "params": {
                "message": {
                    "kind": "message",
                    "messageId": "m-1",
                    "role": "user",
                    "parts": [{"kind": "text", "text": "what is 12 * (3 + 4)?"}],
                }
            },
        }
        response = await http.post(url, json=body)
        assert response.status_code == 200
        task = response.json()["result"]
        assert task["kind"] == "task"
        assert task["status"]["state"] == "completed"
        assert task["artifacts"][0]["parts"][0]["text"] == "84"
        # The same message id again is the same task (the id is the idempotency key).
        again = (await http.post(url, json=body)).json()["result"]
        assert again["id"] == task["id"]
        got = await http.post(url, json=rpc("tasks/get", {"id": task["id"]}))
        assert got.json()["result"]["status"]["state"] == "completed"


async def test_bad_json_rpc_gets_json_rpc_errors(mesh: RunningMesh) -> None:
    async with (
        serve_a2a(mesh.address("gateway"), any_webhook=False) as url,
        httpx.AsyncClient(timeout=30) as http,
    ):
        assert (await error_of(http, url, b"{not json"))["code"] == -32700
        assert (await error_of(http, url, rpc("NoSuchMethod", {})))["code"] == -32601
        assert (await error_of(http, url, {"jsonrpc": "1.0", "id": 1, "method": "GetTask"}))["code"] == -32600
        assert (await error_of(http, url, rpc("SendMessage", {"message": 5})))["code"] == -32602
        # A message with no text in it.
        no_text = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"data": {"a": 1}}]}}
        assert (await error_of(http, url, rpc("SendMessage", no_text)))["code"] == -32602
        # Text longer than a task takes: the gateway's INVALID_ARGUMENT, with its reason.
        error = await error_of(http, url, rpc("SendMessage", message("x" * 20000)))
        assert error["code"] == -32602
        assert error["data"][0]["metadata"]["status"] == "INVALID_ARGUMENT"
        # A task that does not exist, to read, cancel, follow or answer.
        for method, params in (
            ("GetTask", {"id": "nope"}),
            ("CancelTask", {"id": "nope"}),
            ("SubscribeToTask", {"id": "nope"}),
            ("SendMessage", message("km", taskId="nope")),
        ):
            assert (await error_of(http, url, rpc(method, params)))["code"] == -32001, method
        # A cursor that is not a sequence number, or lies beyond the log.
        done = (await http.post(url, json=rpc("SendMessage", message("what is 2 + 2?")), headers=V1)).json()
        task_id = done["result"]["task"]["id"]
        for cursor in ("abc", "-1", "99999"):
            error = await error_of(
                http, url, rpc("SubscribeToTask", {"id": task_id}), **{"Last-Event-ID": cursor}
            )
            assert error["code"] == -32602, cursor
        # Canceling a task that has ended; push notifications, which are not offered.
        assert (await error_of(http, url, rpc("CancelTask", {"id": task_id})))["code"] == -32002
        # Webhooks: a token is required (notifications are signed with it), an address on this host
        # is refused, and so is a task that does not exist.
        for config, code in (
            ({"taskId": task_id, "url": "https://example.com/hook"}, -32602),
            ({"taskId": task_id, "url": "ftp://example.com/hook", "token": "t" * 32}, -32602),
            ({"taskId": task_id, "url": "http://127.0.0.1:9/hook", "token": "t" * 32}, -32602),
            ({"taskId": "nope", "url": "https://example.com/hook", "token": "t" * 32}, -32001),
        ):
            error = await error_of(http, url, rpc("CreateTaskPushNotificationConfig", config))
            assert error["code"] == code, config


async def test_bad_http_json_requests_get_the_rest_error_shape(mesh: RunningMesh) -> None:
    cases = [
        ("GET", "/rest/tasks/nope", None, 404),
        ("POST", "/rest/message:send", b"{not json", 400),
        ("POST", "/rest/message:send", b'{"message": {"parts": []}}', 400),
        ("POST", "/rest/tasks/nope:cancel", b"{}", 404),
    ]
    async with serve_a2a(mesh.address("gateway")) as url, httpx.AsyncClient(timeout=30) as http:
        for method, path, body, status in cases:
            response = await http.request(
                method, f"{url}{path}", content=body, headers={**V1, "Content-Type": "application/json"}
            )
            assert response.status_code == status, (path, response.text)
            assert response.json()["error"]["code"] == status
