"""The load generator's two loops, with senders whose service time is known, so the scheduling
itself is what the assertions measure."""

from __future__ import annotations

import asyncio
import io
import time

import pytest

from hivemesh.loadgen import Closed, Open, Outcome, Request, Send, percentile, run_load


def workload(number: int) -> Request:
    return Request(f"task {number}", user_id="u", session_id=f"s{number}")


def sleeper(seconds: float) -> tuple[list[float], Send]:
    """A sender taking ``seconds`` per task; also returns the times tasks arrived at it."""
    arrivals: list[float] = []

    async def send(request: Request) -> Outcome:
        arrivals.append(time.perf_counter())
        await asyncio.sleep(seconds)
        return Outcome(answer=request.text)

    return arrivals, send


async def test_open_loop_starts_tasks_on_schedule_whatever_the_completions() -> None:
    arrivals, send = sleeper(0.3)
    report = await run_load(send, workload, Open(40), 1.0)
    assert report.started == 40
    assert report.completed == 40
    assert report.errors == {}
    # Tasks kept arriving while earlier ones were still running: 0.3 s at 40/s is 12 at once.
    assert report.max_in_flight >= 10
    # Arrivals spread evenly over the second: the 40th is due at 39/40 s.
    assert arrivals[-1] - arrivals[0] == pytest.approx(39 / 40, abs=0.05)
    # Latency is the service time (plus scheduling noise), not the time between arrivals.
    assert 290 <= report.p50_ms < 450


async def test_closed_loop_waits_for_each_answer() -> None:
    _arrivals, send = sleeper(0.3)
    report = await run_load(send, workload, Closed(2), 1.0)
    # Two callers, 0.3 s each, for 1 s: four rounds at most (the last starts before the end).
    assert 6 <= report.started <= 8
    assert report.max_in_flight == 2
    assert report.completed == report.started


async def test_open_loop_latency_runs_from_the_time_a_task_was_due() -> None:
    blocked = False

    async def send(request: Request) -> Outcome:
        nonlocal blocked
        if not blocked:
            blocked = True
            time.sleep(0.25)  # noqa: ASYNC251 - the load generator itself stalls, on purpose
        return Outcome(answer="ok")

    report = await run_load(send, workload, Open(40), 1.0)
    assert report.started == 40
    # The tasks due during the stall started late; their latency includes the wait although the
    # sender answers at once.
    assert report.start_lag_p99_ms >= 150
    assert report.p99_ms >= 150
    assert report.p50_ms < 50


async def test_errors_wrong_answers_and_unfinished_tasks_are_counted() -> None:
    async def send(request: Request) -> Outcome:
        number = int(request.text.split()[1])
        if number % 4 == 1:
            return Outcome(error="UNAVAILABLE")
        if number % 4 == 2:
            raise ValueError("boom")
        if number % 4 == 3:
            await asyncio.sleep(30)
        return Outcome(answer="wrong" if number % 8 == 4 else "right")

    def checked(number: int) -> Request:
        return Request(f"task {number}", "u", "s", check=lambda answer: answer == "right")

    report = await run_load(send, checked, Open(20), 0.4, drain_s=0.3)
    assert report.started == 8
    assert report.errors == {"UNAVAILABLE": 2, "ValueError": 2, "UNFINISHED": 2}
    assert report.completed == 2
    assert report.wrong == 1


async def test_a_progress_line_appears_about_once_a_second() -> None:
    _arrivals, send = sleeper(0.01)
    stream = io.StringIO()
    await run_load(send, workload, Closed(1), 2.3, progress=stream, label="x ")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("x ")
    for part in ("completed", "tasks/s", "errors 0", "in flight"):
        assert part in lines[1]


def test_percentiles_are_nearest_rank() -> None:
    ordered = [float(n) for n in range(1, 101)]
    assert percentile(ordered, 0.5) == 50
    assert percentile(ordered, 0.99) == 99
    assert percentile([7.0], 0.99) == 7
