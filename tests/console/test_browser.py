"""The console in a real browser against a real mesh: a task is run from the page, appears in the
list and finishes live, its timeline shows the tool call with its arguments and result; a question
is answered from the page; a task is canceled with a confirmation; the tools catalogue shows
schemas; a dead letter is inspected, replayed and purged with a confirmation."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from hivemesh.edge.config import EdgeConfig
from hivemesh.mesh.config import Settings
from tests.console.conftest import Booting, Up
from tests.edge.conftest import ServedEdge, serve_edge
from tests.support import make_settings

# One browser for the module's tests (conftest.browser), so they share its event loop.
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
# Long enough for a task on a loaded 2-core machine; a finished page answers far sooner.
WAIT_MS = 20_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module", autouse=True)
def _boot_up_first(booting_up: Booting) -> None:
    """``hivemesh up`` boots in its own process while the tests before the one using it run."""


async def open_page(browser: Browser, url: str) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 860})
    page.set_default_timeout(WAIT_MS)
    await page.goto(f"{url}/console/")
    return page


async def run_task(page: Page, text: str) -> str:
    """Run a task from the tasks page; the page moves to the task's own page. Its id."""
    await page.goto(page.url.split("#")[0] + "#/tasks")
    await page.fill("#run-form input[name=text]", text)
    await page.click("#run-form button[type=submit]")
    await page.wait_for_url("**/#/tasks/*")
    return page.url.rsplit("/", 1)[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest_asyncio.fixture(loop_scope="module")
async def edge_without_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ServedEdge]:
    """A mesh whose tool service is down (its address answers nothing) and that gives a task one
    attempt: a task that needs a tool fails retryably and becomes a dead letter."""
    monkeypatch.setenv("HIVEMESH_MAX_ATTEMPTS", "1")  # the task queue's own config reads it
    settings: Settings = make_settings(tmp_path / "data")
    settings = settings.with_ports(tool=free_port())
    config = EdgeConfig(port=0, gateway_patience_s=0.5)
    async with serve_edge(settings, config, services=("memory", "language", "planner", "gateway")) as served:
        yield served


async def test_a_dead_letter_is_inspected_replayed_and_purged(
    edge_without_tools: ServedEdge, browser: Browser, screenshots: Path
) -> None:
    page = await open_page(browser, edge_without_tools.url)
    task_id = await run_task(page, "what is 2 + 2?")
    await expect(page.locator("h1 .state")).to_have_attribute("data-state", "failed")
    await expect(page.locator("#timeline tr[data-kind=failed]")).to_contain_text("UNAVAILABLE")

    await page.click("header nav a[data-nav=dead-letters]")
    letter = page.locator(f'#dead-letter-rows tr[data-task-id="{task_id}"]')
    await expect(letter).to_contain_text("what is 2 + 2?")
    await letter.locator("button.inspect").click()
    await expect(page.locator("#dead-letter-detail pre")).to_contain_text('"delivery_count": 1')
    await page.screenshot(path=screenshots / "dead-letters.png", full_page=True)

    # Replay asks first; declining changes nothing.
    await letter.locator("button.replay").click()
    await page.click("#confirm-no")
    await expect(letter).to_have_count(1)
    await letter.locator("button.replay").click()
    await page.click("#confirm-yes")
    await expect(page.locator("#flash")).to_contain_text("back on the queue")
    # The replayed task runs a second attempt (the tool service is still down, so it fails and is
    # set aside again): its timeline shows the replay and the new attempt.
    await page.goto(page.url.split("#")[0] + f"#/tasks/{task_id}")
    await expect(page.locator("#timeline tr[data-kind=failed]")).to_have_count(2)
    replayed = page.locator("#timeline tr[data-kind=state_changed]", has_text="submitted")
    await expect(replayed).to_have_count(1)
    attempts = await page.locator("#timeline tr[data-kind=failed] td:nth-child(3)").all_inner_texts()
    assert attempts == ["1", "2"]

    # The service map shows the tool service down.
    await page.click("header nav a[data-nav=services]")
    await expect(page.locator('#service-map g.node[data-service="tool"]')).to_have_attribute(
        "data-health", "down"
    )
    await expect(page.locator('#service-map g.node[data-service="gateway"]')).to_have_attribute(
        "data-health", "serving"
    )
    await expect(page.locator('#service-rows tr[data-service="tool"]')).to_contain_text("unreachable")

    await page.click("header nav a[data-nav=dead-letters]")
    await expect(letter).to_have_count(1)
    await letter.locator("button.purge").click()
    await page.click("#confirm-yes")
    await expect(page.locator("#flash")).to_contain_text("Purged 1 dead letter")
    await expect(page.locator("#dead-letter-rows tr")).to_have_count(0)
    await page.close()


async def test_a_task_runs_appears_and_finishes_with_its_timeline_and_trace(
    hivemesh_up: Up, browser: Browser, screenshots: Path
) -> None:
    # hivemesh up says where the console is (it opens without credentials on loopback).
    assert "console  on http://localhost:0/console/" in hivemesh_up.output.read_text()
    # A second page shows the task list while the task runs: it follows the change live.
    watching = await open_page(browser, hivemesh_up.url)
    await expect(watching.locator("#list-live")).to_have_text("live")
    await expect(watching.locator("#task-rows tr")).to_have_count(0)
    page = await open_page(browser, hivemesh_up.url)
    task_id = await run_task(page, "what is 12 * (3 + 4)?")
    # Live: the page follows the task's events until it ends.
    await expect(page.locator("h1 .state")).to_have_attribute("data-state", "completed")
    await expect(page.locator("#answer")).to_have_text("84")
    listed = watching.locator(f'#task-rows tr[data-task-id="{task_id}"]')
    await expect(listed.locator(".state")).to_have_text("completed")
    await watching.close()
    called = page.locator("#timeline tr[data-kind=tool_called]")
    await expect(called).to_contain_text("calculator")
    await expect(called.locator("pre")).to_contain_text('"expression"')
    await expect(page.locator("#timeline tr[data-kind=tool_result]")).to_contain_text("84")
    kinds = await page.locator("#timeline tr").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert kinds[0] == "submitted"
    assert kinds[-1] == "completed"
    sequences = await page.locator("#timeline tr").evaluate_all("rows => rows.map(r => +r.dataset.sequence)")
    assert sequences == list(range(1, len(sequences) + 1))
    attempts = await page.locator("#timeline tr td:nth-child(3)").all_inner_texts()
    assert "1" in attempts
    await expect(page.locator("#cancel-task")).to_have_count(0)
    await page.click("#verify-task")
    await expect(page.locator("#verify-result")).to_have_text(f"hash chain intact ({len(sequences)} events)")
    # The trace, as a waterfall across the services (spans are written in batches: refresh until
    # the task's calls are there).
    trace = page.locator("#trace")
    for _ in range(40):
        if await trace.locator('.wf-row[data-service="tool"]').count():
            break
        await page.click("#load-trace")
        await page.wait_for_timeout(250)
    services = set(await trace.locator(".wf-row").evaluate_all("rows => rows.map(r => r.dataset.service)"))
    assert {"gateway", "language", "memory", "tool"} <= services
    await expect(trace.locator('.wf-row[data-span="invoke_agent hivemesh"]')).to_have_count(1)
    assert await trace.locator('.wf-row[data-status="ERROR"]').count() == 0
    await page.screenshot(path=screenshots / "task.png", full_page=True)

    # A question, answered from the page.
    asking = await run_task(page, "how do you spell")
    await expect(page.locator("h1 .state")).to_have_attribute("data-state", "input_required")
    await expect(page.locator("#timeline tr[data-kind=input_requested]")).to_have_count(1)
    await page.fill("#answer-form input[name=text]", "giraffe")
    await page.click("#answer-form button[type=submit]")
    await expect(page.locator("h1 .state")).to_have_attribute("data-state", "completed")
    await expect(page.locator("#answer")).to_have_text("G-I-R-A-F-F-E")

    # The list shows both, finished, newest first; the text filter finds one.
    await page.click("header nav a[data-nav=tasks]")
    rows = page.locator("#task-rows tr")
    await expect(rows).to_have_count(2)
    assert await rows.evaluate_all("rows => rows.map(r => r.dataset.taskId)") == [asking, task_id]
    await expect(page.locator(f'#task-rows tr[data-task-id="{task_id}"] .state')).to_have_text("completed")
    await page.screenshot(path=screenshots / "tasks.png", full_page=True)
    await page.fill("#filter-form input[name=q]", "SPELL")
    await page.click("#filter-form button[type=submit]")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-task-id", asking)
    await page.select_option("#filter-form select[name=state]", "failed")
    await page.fill("#filter-form input[name=q]", "")
    await page.click("#filter-form button[type=submit]")
    await expect(rows).to_have_count(0)

    # Cancel asks first; a task waiting for an answer is canceled.
    await run_task(page, "how do you spell")
    await expect(page.locator("h1 .state")).to_have_attribute("data-state", "input_required")
    await page.click("#cancel-task")
    await page.click("#confirm-no")
    await expect(page.locator("h1 .state")).to_have_attribute("data-state", "input_required")
    await page.click("#cancel-task")
    await page.click("#confirm-yes")
    await expect(page.locator("h1 .state")).to_have_attribute("data-state", "canceled")
    await expect(page.locator("#timeline tr[data-kind=canceled]")).to_have_count(1)
    await expect(page.locator("#cancel-task")).to_have_count(0)

    # The tools catalogue, with schemas.
    await page.click("header nav a[data-nav=tools]")
    calculator = page.locator('section[data-tool="calculator"]')
    await expect(calculator.locator("pre").first).to_contain_text('"expression"')
    # Its calls as the tool service counted them: the one of the first task.
    figures = calculator.locator(".tool-figures")
    await expect(figures).to_have_attribute("data-calls", "1")
    await expect(figures.locator(".calls")).to_have_text("1 call")
    await expect(figures.locator(".latency")).to_have_text(re.compile(r"^mean [0-9.]+ ms · p99 [0-9.]+ ms$"))
    await expect(figures.locator(".rate")).to_have_text(re.compile(r"^[0-9.]+/s · p99 .+ lately$"))
    await page.screenshot(path=screenshots / "tools.png", full_page=True)

    # Memory: the tenant's counts per layer (the tasks' questions and answers are short-term turns).
    await page.click("header nav a[data-nav=memory]")
    await expect(page.locator("#memory-tenant")).to_have_text("Tenant default")
    short_term = page.locator('#memory-rows tr[data-layer="short_term"]')
    await expect(short_term).to_contain_text("sqlite")
    assert int(await short_term.get_attribute("data-items") or 0) >= 2
    await expect(page.locator('#memory-rows tr[data-layer="long_term"]')).to_contain_text("qdrant-edge")
    await expect(page.locator('#memory-rows tr[data-layer="structured"]')).to_contain_text("sqlite")
    await page.screenshot(path=screenshots / "memory.png", full_page=True)

    # The service map: every service healthy, and the calls of a task run while it is shown.
    await page.click("header nav a[data-nav=services]")
    for service in ("gateway", "planner", "language", "memory", "tool"):
        await expect(page.locator(f'#service-map g.node[data-service="{service}"]')).to_have_attribute(
            "data-health", "serving"
        )
    await expect(page.locator("#map-note")).to_contain_text("over the last")
    async with httpx.AsyncClient(base_url=f"{hivemesh_up.url}/console/api", timeout=30) as api:
        made = await api.post("/tasks", json={"text": "convert 5 miles to km"})
        await api.get(f"/tasks/{made.json()['task']['task_id']}/events")
    to_tool = page.locator('#service-map g.edge[data-edge="planner-tool"]')
    await expect(to_tool).to_have_class(re.compile(r"\bok\b"))
    await expect(to_tool.locator("tspan").first).to_have_text(re.compile(r"^[0-9.]+/s · 0\.0% err$"))
    await expect(to_tool.locator("tspan").last).to_have_text(re.compile(r"^p99 [0-9.]+ ms$"))
    await expect(page.locator('#service-map g.edge[data-edge="clients-gateway"]')).to_have_class(
        re.compile(r"\bok\b")
    )
    await page.screenshot(path=screenshots / "services.png", full_page=True)
    await page.close()
