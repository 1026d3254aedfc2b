"""Runs a suite's cases through a mesh's gateway and judges the answers.

Each case runs as a user of its own (``eval-<run>-<n>``), so lists and memories never leak between
cases or runs. A turn is one ExecuteTask stream; a turn that must make the agent ask gets its
follow-up with ContinueTask. A call refused for the tenant's rate limit (RESOURCE_EXHAUSTED) is
tried again after the delay the gateway names, with the same request id, so the eval measures
answers and not the limit; any other failed call, or a task that ends FAILED or CANCELED, is an
error rather than a wrong answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import time
import uuid
from dataclasses import dataclass

import grpc

from hivemesh.client import HivemeshClient
from hivemesh.common.v1.task_pb2 import CanarySide, TaskEvent
from hivemesh.evaluation.cases import Case, Suite, Turn, judge
from hivemesh.loadgen import Outcome, outcome_of
from hivemesh.mesh.status import details_of

# Times one call refused for the rate limit is tried again before it counts as an error.
MAX_THROTTLED_RETRIES = 20
# Wait before trying again when the refusal names no delay.
DEFAULT_RETRY_DELAY_S = 0.25
_ASKED = "TASK_STATE_INPUT_REQUIRED"


class Verdict(enum.StrEnum):
    CORRECT = "correct"
    # The task completed (or asked) but the answer does not meet the case's expectations.
    WRONG = "wrong"
    # A call failed, or a task ended FAILED or CANCELED: no answer to judge.
    ERROR = "error"


@dataclass(frozen=True)
class CaseResult:
    case: Case
    verdict: Verdict
    # What went wrong (empty when correct): the turn's text and what came back.
    detail: str
    # Seconds each turn took, setup turns included, in the order they ran.
    latencies_s: tuple[float, ...]
    # Calls refused for the rate limit and tried again.
    throttled: int


@dataclass
class _Tally:
    """What one case's turns cost: seconds per turn, calls refused for the rate limit."""

    latencies_s: list[float]
    throttled: int = 0


class _Failed(Exception):
    def __init__(self, verdict: Verdict, detail: str) -> None:
        super().__init__(detail)
        self.verdict = verdict
        self.detail = detail


class SuiteRunner:
    """``await SuiteRunner(client).run(suite, concurrency=4)``: one result per case, in suite order."""

    def __init__(
        self,
        client: HivemeshClient,
        *,
        task_timeout_s: float = 60.0,
        today: dt.date | None = None,
        run_id: str | None = None,
        side: CanarySide.ValueType = CanarySide.CANARY_SIDE_UNSPECIFIED,
    ) -> None:
        self._client = client
        # The side of the canaries of language and tool every case runs on (TaskOptions.side).
        self._side = side
        self._timeout_s = task_timeout_s
        self._today = today or dt.datetime.now(dt.UTC).date()
        self._run = run_id or uuid.uuid4().hex[:8]

    async def run(self, suite: Suite, *, concurrency: int) -> list[CaseResult]:
        semaphore = asyncio.Semaphore(concurrency)

        async def bounded(number: int, case: Case) -> CaseResult:
            async with semaphore:
                return await self.run_case(case, user=f"eval-{self._run}-{number}")

        return list(await asyncio.gather(*(bounded(n, c) for n, c in enumerate(suite.cases))))

    async def run_case(self, case: Case, *, user: str) -> CaseResult:
        tally = _Tally([])
        try:
            for turn in case.setup:
                await self._turn(turn, user, tally, judged=False)
            for turn in case.turns:
                await self._turn(turn, user, tally, judged=True)
        except _Failed as failure:
            return CaseResult(
                case, failure.verdict, failure.detail, tuple(tally.latencies_s), tally.throttled
            )
        return CaseResult(case, Verdict.CORRECT, "", tuple(tally.latencies_s), tally.throttled)

    async def _turn(self, turn: Turn, user: str, tally: _Tally, *, judged: bool) -> None:
        label = f"{'' if judged else 'setup '}{turn.text!r}"
        started = time.perf_counter()
        try:
            last = await self._execute(turn, user, tally)
            outcome = outcome_of(last)
            if turn.question:
                if outcome.error != _ASKED or last is None:
                    raise _Failed(*_unexpected(label, outcome, wanted="a question"))
                outcome = await self._answer(last.task_id, turn.answer, tally)
        except grpc.aio.AioRpcError as exc:
            details = details_of(exc)
            raise _Failed(
                Verdict.ERROR, f"{label} -> {details.code.name} {details.reason} {details.message}".rstrip()
            ) from exc
        finally:
            tally.latencies_s.append(time.perf_counter() - started)
        if outcome.error:
            raise _Failed(*_unexpected(label, outcome, wanted="an answer"))
        if judged and not judge(turn, outcome.answer, today=self._today):
            raise _Failed(Verdict.WRONG, f"{label} -> {outcome.answer!r}")

    async def _execute(self, turn: Turn, user: str, tally: _Tally) -> TaskEvent | None:
        request_id = uuid.uuid4().hex
        for attempt in range(MAX_THROTTLED_RETRIES + 1):
            last: TaskEvent | None = None
            try:
                async for event in self._client.execute(
                    turn.text,
                    user_id=user,
                    session_id=turn.session,
                    request_id=request_id,
                    timeout_s=self._timeout_s,
                    side=self._side,
                    time_zone=turn.time_zone,
                ):
                    last = event
            except grpc.aio.AioRpcError as exc:
                await self._back_off(exc, attempt, tally)
                continue
            return last
        raise AssertionError("unreachable: the last attempt raises")

    async def _answer(self, task_id: str, text: str, tally: _Tally) -> Outcome:
        # The answer and the watch are retried apart: an answer the gateway took is not sent again
        # (the task no longer waits for one), and a watch refused half-way resumes where it was.
        request_id = uuid.uuid4().hex
        for attempt in range(MAX_THROTTLED_RETRIES + 1):
            try:
                task = await self._client.answer(task_id, text, request_id=request_id)
                break
            except grpc.aio.AioRpcError as exc:
                await self._back_off(exc, attempt, tally)
        else:
            raise AssertionError("unreachable: the last attempt raises")
        last: TaskEvent | None = None
        after = task.last_sequence - 1
        for attempt in range(MAX_THROTTLED_RETRIES + 1):
            try:
                async for event in self._client.follow(task_id, after, timeout_s=self._timeout_s):
                    last, after = event, event.sequence
            except grpc.aio.AioRpcError as exc:
                await self._back_off(exc, attempt, tally)
                continue
            return outcome_of(last)
        raise AssertionError("unreachable: the last attempt raises")

    @staticmethod
    async def _back_off(exc: grpc.aio.AioRpcError, attempt: int, tally: _Tally) -> None:
        """Sleep as the gateway asks after a rate-limit refusal; re-raise anything else."""
        details = details_of(exc)
        if details.code != grpc.StatusCode.RESOURCE_EXHAUSTED or attempt >= MAX_THROTTLED_RETRIES:
            raise exc
        tally.throttled += 1
        # At least the delay the gateway names, longer at each refusal: the cases running at once
        # all wait for the same tenant's bucket.
        await asyncio.sleep(max(details.retry_delay_s or DEFAULT_RETRY_DELAY_S, 0.05 * (attempt + 1)))


def _unexpected(label: str, outcome: Outcome, *, wanted: str) -> tuple[Verdict, str]:
    # Asking instead of answering (or answering instead of asking) is a wrong answer; a task that
    # failed, was canceled or whose stream ended early gave none.
    if outcome.error == _ASKED:
        return Verdict.WRONG, f"{label} -> asked a question instead of {wanted}"
    if not outcome.error:
        return Verdict.WRONG, f"{label} -> answered {outcome.answer!r} instead of {wanted}"
    return Verdict.ERROR, f"{label} -> {outcome.error}"
