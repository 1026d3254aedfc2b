"""The console's JSON API against a real mesh: the caller's credential decides what it sees (the
gateway's tenants), bad input is a 400 naming the parameter, changes must be JSON, the event
stream resumes after a sequence number, and the text filter reads on across the gateway's pages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from hivemesh.common.v1.task_pb2 import TaskEvent
from hivemesh.gateway.app import key_store
from hivemesh.mesh.config import Settings
from tests.edge.conftest import ServedEdge, serve_edge
from tests.support import keys_for, make_settings

# One mesh for the tests of this module (a mesh takes seconds to start); each test acts as its
# own user, so none sees another's tasks through the user filter.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def edge(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServedEdge]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HIVEMESH_AUTH", "none")
        settings = make_settings(tmp_path_factory.mktemp("console") / "data")
        async with serve_edge(settings) as served:
            yield served


@pytest_asyncio.fixture(loop_scope="module")
async def api(edge: ServedEdge) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{edge.url}/console/api", timeout=30) as client:
        yield client


def events_of(stream: str) -> list[tuple[str, str, dict[str, object]]]:
    """(event, id, data) of each server-sent event in ``stream``."""
    found = []
    for block in stream.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":")
        if "data" in fields:
            found.append((fields.get("event", "message"), fields.get("id", ""), json.loads(fields["data"])))
    return found


async def run(api: httpx.AsyncClient, text: str, user: str = "ana", **headers: str) -> str:
    """Submit a task for ``user`` and read its events until it ends; its id."""
    made = await api.post("/tasks", json={"text": text, "user": user}, headers=headers)
    assert made.status_code == 201, made.text
    task_id: str = made.json()["task"]["task_id"]
    ended = await api.get(f"/tasks/{task_id}/events", headers=headers)
    assert events_of(ended.text)[-1][0] == "end"
    return task_id


async def test_the_page_and_its_files_are_served_with_a_strict_policy(edge: ServedEdge) -> None:
    async with httpx.AsyncClient(base_url=edge.url, timeout=10) as http:
        moved = await http.get("/console")
        page = await http.get("/console/")
        script = await http.get("/console/static/console.js")
    assert moved.status_code == 308
    assert moved.headers["location"] == "/console/"
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="static/console.js"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert script.status_code == 200
    assert "readEvents" in script.text


async def test_a_task_streams_its_events_and_resumes_after_a_sequence(api: httpx.AsyncClient) -> None:
    task_id = await run(api, "what is 12 * (3 + 4)?")
    whole = events_of((await api.get(f"/tasks/{task_id}/events")).text)
    kinds = [
        next(k for k in data if k not in ("task_id", "sequence", "time", "attempt"))
        for _, _, data in whole[:-1]
    ]
    assert kinds[0] == "submitted"
    assert "tool_called" in kinds
    assert kinds[-1] == "completed"
    assert [int(i) for _, i, _ in whole[:-1]] == list(range(1, len(whole)))
    # After a sequence number (the query, or Last-Event-ID as an EventSource resends it).
    after = events_of((await api.get(f"/tasks/{task_id}/events", params={"after": 3})).text)
    resumed = events_of((await api.get(f"/tasks/{task_id}/events", headers={"last-event-id": "3"})).text)
    assert [i for _, i, _ in after[:-1]] == [str(n) for n in range(4, len(whole))]
    assert [i for _, i, _ in resumed] == [i for _, i, _ in after]
    task = (await api.get(f"/tasks/{task_id}")).json()["task"]
    assert task["state"] == "TASK_STATE_COMPLETED"
    assert task["answer"] == "84"


async def next_event(lines: AsyncIterator[str]) -> tuple[str, dict[str, Any]]:
    """The next server-sent event (name, data) read from ``lines``, comments skipped."""
    name, data = "message", ""
    async for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
        elif not line and data:
            found = json.loads(data)
            assert isinstance(found, dict)
            return name, found
    raise AssertionError("the stream ended")


async def test_the_task_list_follows_changes_live(api: httpx.AsyncClient) -> None:
    async with api.stream("GET", "/tasks/live", params={"user": "lister"}) as live:
        assert live.status_code == 200
        assert live.headers["content-type"].startswith("text/event-stream")
        lines = live.aiter_lines()
        assert await asyncio.wait_for(next_event(lines), 20) == ("tasks", {"tasks": [], "scanned": 0})
        made = await api.post("/tasks", json={"text": "what is 5 + 5?", "user": "lister"})
        task_id = made.json()["task"]["task_id"]
        # The page is sent again as the task is submitted, runs and completes.
        states: list[str] = []
        while states[-1:] != ["TASK_STATE_COMPLETED"]:
            name, page = await asyncio.wait_for(next_event(lines), 20)
            assert name == "tasks"
            assert [t["task_id"] for t in page["tasks"]] == [task_id]
            states.append(page["tasks"][0]["state"])
        assert len(states) == len(set(states))  # each page differs from the one before
    bad = await api.get("/tasks/live", params={"state": "finished"})
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "state")


async def test_the_text_filter_reads_on_across_pages(api: httpx.AsyncClient) -> None:
    mine = {"user": "filter"}
    wanted = await run(api, "convert 5 miles to km", "filter")
    for text in ("what is 2 + 2?", "what is 3 + 3?", "what is 4 + 4?"):
        await run(api, text, "filter")
    found = (await api.get("/tasks", params={**mine, "q": "MILES", "page_size": 1})).json()
    assert [t["task_id"] for t in found["tasks"]] == [wanted]
    assert found["scanned"] == 4
    assert found["next_page_token"] == ""
    newest = (await api.get("/tasks", params={**mine, "page_size": 2})).json()
    assert len(newest["tasks"]) == 2
    assert newest["next_page_token"]
    rest = (
        await api.get("/tasks", params={**mine, "page_size": 2, "page_token": newest["next_page_token"]})
    ).json()
    assert rest["tasks"][-1]["task_id"] == wanted
    ended_badly = (await api.get("/tasks", params={**mine, "state": "failed,canceled"})).json()
    assert ended_badly["tasks"] == []
    later = (await api.get("/tasks", params={**mine, "after": "2999-01-01T00:00:00Z"})).json()
    assert later["tasks"] == []
    completed = (await api.get("/tasks", params={**mine, "state": "completed"})).json()
    assert len(completed["tasks"]) == 4


async def test_verify_names_the_first_altered_event(edge: ServedEdge, api: httpx.AsyncClient) -> None:
    task_id = await run(api, "what is 5 + 5?", "verifier")
    intact = await api.post(f"/tasks/{task_id}/verify", json={})
    assert intact.status_code == 200
    events = intact.json()["events"]
    assert intact.json() == {"intact": True, "events": events, "broken_at": 0, "problem": ""}
    assert events >= 5
    # Alter the third event in the log's own store, behind the mesh's back.
    forged = TaskEvent(task_id=task_id, sequence=3)
    forged.notice.code = "FORGED"
    with contextlib.closing(sqlite3.connect(edge.mesh.settings.data_dir / "tasks.db")) as db, db:
        db.execute(
            "UPDATE task_events SET event = ? WHERE task_id = ? AND sequence = 3",
            (forged.SerializeToString(), task_id),
        )
    broken = (await api.post(f"/tasks/{task_id}/verify", json={})).json()
    assert (broken["intact"], broken["broken_at"]) == (False, 3)
    assert "hash" in broken["problem"]
    assert (await api.post("/tasks/no-such-task/verify", json={})).status_code == 404


async def test_the_service_map_reads_health_and_rpc_counters(api: httpx.AsyncClient) -> None:
    await run(api, "what is 6 * 7?", "mapper")
    health = (await api.get("/services")).json()["services"]
    assert {h["service"]: (h["liveness"], h["readiness"]) for h in health} == dict.fromkeys(
        ("gateway", "planner", "language", "memory", "tool"), ("serving", "serving")
    )
    figures = (await api.get("/metrics")).json()
    assert figures["available"] is True
    submitted = [
        r
        for r in figures["requests"]
        if r["service"].endswith("GatewayService") and r["method"] == "SubmitTask"
    ]
    assert sum(r["count"] for r in submitted if r["code"] == "OK") >= 1
    invoked = next(
        d
        for d in figures["durations"]
        if d["service"].endswith("ToolService") and d["method"] == "InvokeTool"
    )
    bounds = [le for le, _ in invoked["buckets"]]
    assert bounds[-1] is None
    assert bounds[:-1] == sorted(bounds[:-1])
    assert invoked["buckets"][-1][1] >= 1


def tool_figures(figures: dict[str, Any], tool: str) -> tuple[float, float, float]:
    """(calls that succeeded, observations of the duration, seconds observed) of ``tool``."""
    calls = sum(r["count"] for r in figures["tools"] if r["tool"] == tool and r["outcome"] == "OK")
    timing = next((d for d in figures["tool_durations"] if d["tool"] == tool), None)
    if timing is None:
        return calls, 0.0, 0.0
    assert timing["buckets"][-1] == [None, timing["count"]]
    return calls, timing["count"], timing["sum"]


async def test_the_tool_catalogue_reads_each_tools_calls_and_latency(api: httpx.AsyncClient) -> None:
    before = tool_figures((await api.get("/metrics")).json(), "calculator")
    await run(api, "what is 9 * 9?", "counter")
    after = tool_figures((await api.get("/metrics")).json(), "calculator")
    assert after[0] - before[0] == 1
    assert after[1] - before[1] == 1
    assert after[2] > before[2]


def layer(found: dict[str, Any], name: str) -> dict[str, Any]:
    (entry,) = [entry for entry in found["layers"] if entry["layer"] == name]
    assert isinstance(entry, dict)
    return entry


async def test_memory_counts_each_layer_for_a_tenant_or_one_user(api: httpx.AsyncClient) -> None:
    before = (await api.get("/memory", params={"user": "rememberer"})).json()
    assert before["tenant"] == "default"
    assert [(e["layer"], e["store"], e["items"]) for e in before["layers"]] == [
        ("short_term", "sqlite", 0),
        ("long_term", "qdrant-edge", 0),
        ("structured", "sqlite", 0),
    ]
    assert before["sessions"] == 0
    await run(api, "what is 3 + 4?", "rememberer")
    after = (await api.get("/memory", params={"user": "rememberer"})).json()
    # The task's question and answer, in its session.
    assert layer(after, "short_term")["items"] == 2
    assert after["sessions"] == 1
    tenant = (await api.get("/memory")).json()
    assert layer(tenant, "short_term")["items"] >= 2
    assert tenant["sessions"] >= 1
    # Without authentication another tenant may be named; it holds nothing here.
    other = (await api.get("/memory", params={"tenant": "initech"})).json()
    assert (other["tenant"], [e["items"] for e in other["layers"]]) == ("initech", [0, 0, 0])
    for params, param in (({"tenant": "no spaces"}, "tenant"), ({"user": "a/b"}, "user")):
        bad = await api.get("/memory", params=params)
        assert (bad.status_code, bad.json()["error"]["param"]) == (400, param)


async def test_without_a_trace_file_a_task_has_no_trace(api: httpx.AsyncClient) -> None:
    task_id = await run(api, "what is 1 + 1?", "tracer")
    found = (await api.get(f"/tasks/{task_id}/trace")).json()
    assert (found["available"], found["spans"]) == (False, [])
    assert "HIVEMESH_TRACE_FILE" in found["reason"]
    assert (await api.get("/tasks/no-such-task/trace")).status_code == 404


async def test_without_authentication_any_tenant_is_listed_by_name(api: httpx.AsyncClient) -> None:
    made = await api.post("/tasks", json={"text": "what is 7 + 7?", "user": "ten", "tenant": "globex"})
    assert made.json()["task"]["scope"]["tenant_id"] == "globex"
    theirs = (await api.get("/tasks", params={"tenant": "globex"})).json()["tasks"]
    assert [t["task_id"] for t in theirs] == [made.json()["task"]["task_id"]]
    ours = (await api.get("/tasks", params={"user": "ten"})).json()["tasks"]
    assert ours == []
    bad = await api.get("/tasks", params={"tenant": "no spaces"})
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "tenant")


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"state": "finished"}, "state"),
        ({"after": "yesterday"}, "after"),
        ({"before": "2026-13-01"}, "before"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "many"}, "page_size"),
        ({"page_token": "not-a-token"}, "page_token"),
        ({"after": "0001-01-01T00:00:00+14:00"}, "after"),
    ],
)
async def test_a_bad_filter_is_a_400_naming_it(
    api: httpx.AsyncClient, query: dict[str, str], param: str
) -> None:
    response = await api.get("/tasks", params=query)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_bad_changes_are_refused_with_the_reason(api: httpx.AsyncClient) -> None:
    not_json = await api.post(
        "/tasks", content="text=hi", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert not_json.status_code == 415
    empty = await api.post("/tasks", json={"text": "  "})
    assert (empty.status_code, empty.json()["error"]["param"]) == (400, "text")
    bad_user = await api.post("/tasks", json={"text": "hi", "user": "no spaces allowed"})
    assert bad_user.status_code == 400
    assert bad_user.json()["error"]["param"] == "user"
    both = await api.post("/dead-letters/purge", json={"task_id": "t", "all": True})
    neither = await api.post("/dead-letters/purge", json={})
    assert both.status_code == neither.status_code == 400
    assert both.json()["error"]["param"] == "task_id"
    unknown = await api.get("/tasks/no-such-task")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "task_not_found")
    stream = await api.get("/tasks/no-such-task/events")
    assert stream.status_code == 404
    cursor = await api.get("/tasks/no-such-task/events", params={"after": "-1"})
    assert (cursor.status_code, cursor.json()["error"]["param"]) == (400, "after")
    no_letter = await api.get("/dead-letters/no-such-task")
    assert no_letter.status_code == 404


@pytest.mark.asyncio(loop_scope="function")
async def test_the_callers_credential_decides_what_the_console_shows(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEMESH_AUTH", "required")
    acme, globex = await keys_for(settings, "acme", "globex")
    store = key_store(settings)
    await store.start()
    try:
        viewer = (await store.create("acme", role="viewer"))[1]
    finally:
        await store.stop(0)
    async with (
        serve_edge(settings) as edge,
        httpx.AsyncClient(base_url=f"{edge.url}/console/api", timeout=30) as api,
    ):
        anonymous = await api.get("/tasks")
        assert anonymous.status_code == 401
        assert (await api.post("/tasks", json={"text": "what is 2 + 2?"})).status_code == 401
        as_acme = {"authorization": f"Bearer {acme}"}
        as_globex = {"x-api-key": globex}
        task_id = await run(api, "what is 2 + 2?", **as_acme)
        listed = (await api.get("/tasks", headers=as_acme)).json()["tasks"]
        assert [(t["task_id"], t["scope"]["tenant_id"]) for t in listed] == [(task_id, "acme")]
        assert (await api.get("/tasks", headers=as_globex)).json()["tasks"] == []
        # Naming another tenant than the credentials' is refused, not answered with nothing.
        other = await api.get("/tasks", params={"tenant": "acme"}, headers=as_globex)
        assert (other.status_code, other.json()["error"]["code"]) == (403, "tenant_mismatch")
        assert (await api.get(f"/tasks/{task_id}", headers=as_globex)).status_code == 404
        assert (await api.get(f"/tasks/{task_id}/events", headers=as_globex)).status_code == 404
        canceled = await api.post(f"/tasks/{task_id}/cancel", json={}, headers=as_globex)
        assert canceled.status_code == 404
        assert (await api.post(f"/tasks/{task_id}/verify", json={}, headers=as_globex)).status_code == 404
        assert (await api.get(f"/tasks/{task_id}/trace", headers=as_globex)).status_code == 404
        assert (await api.post(f"/tasks/{task_id}/verify", json={}, headers=as_acme)).json()["intact"] is True
        wrong = await api.get("/tasks", headers={"authorization": "Bearer hmk_nope_nope"})
        assert wrong.status_code == 401
        # A viewer's key of the same tenant reads everything and changes nothing.
        as_viewer = {"authorization": f"Bearer {viewer}"}
        assert [t["task_id"] for t in (await api.get("/tasks", headers=as_viewer)).json()["tasks"]] == [
            task_id
        ]
        assert (await api.post(f"/tasks/{task_id}/verify", json={}, headers=as_viewer)).json()[
            "intact"
        ] is True
        refused = await api.post("/tasks", json={"text": "what is 2 + 2?"}, headers=as_viewer)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "read_only_credential")
        purge = await api.post("/dead-letters/purge", json={"all": True}, headers=as_viewer)
        assert purge.status_code == 403
        # Memory's counts: each credential's own tenant (a viewer's included), never another's.
        ours = (await api.get("/memory", headers=as_viewer)).json()
        assert ours["tenant"] == "acme"
        assert layer(ours, "short_term")["items"] >= 2  # the task's question and answer
        theirs = (await api.get("/memory", headers=as_globex)).json()
        assert theirs["tenant"] == "globex"
        assert [entry["items"] for entry in theirs["layers"]] == [0, 0, 0]
        other_list = await api.get("/tasks/live", params={"tenant": "acme"}, headers=as_globex)
        assert (other_list.status_code, other_list.json()["error"]["code"]) == (403, "tenant_mismatch")
        foreign = await api.get("/memory", params={"tenant": "acme"}, headers=as_globex)
        assert (foreign.status_code, foreign.json()["error"]["code"]) == (403, "tenant_mismatch")
        assert (await api.get("/memory")).status_code == 401
