"""Shadow mode: a candidate router answers the same Understand requests as the live one, and only
the agreement is kept.

The live reply never waits for the candidate: once the live router has classified a text, the text
and the live intent are offered to a bounded queue (``offer`` never blocks; a full queue drops the
request and counts it), and one worker drains the queue in batches, running the candidate in a
thread. The candidate's intents go nowhere but into the tallies: requests agreed, disagreed,
dropped and failed, disagreements by (live, candidate) intent pair, exported as Prometheus counters
(``hivemesh nlu shadow-report`` reads them), and a sample of the disagreeing texts in the log, at
most ``log_per_minute`` a minute.

Domain code: no grpc; the routers are reached through plain callables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from hivemesh.language.nlu.router import Prediction

_log = logging.getLogger(__name__)

OUTCOMES = ("agreed", "disagreed", "dropped", "failed")
REQUESTS_METRIC = "hivemesh_nlu_shadow_requests"
DISAGREEMENTS_METRIC = "hivemesh_nlu_shadow_disagreements"


@dataclass(frozen=True)
class ShadowConfig:
    # Directory of the candidate router (written by ``hivemesh nlu train``).
    model: Path
    # Requests waiting for the candidate; beyond it they are dropped (counted).
    queue: int = 256
    # Texts the candidate classifies in one call.
    max_batch: int = 64
    # Disagreeing texts written to the log per minute; 0: none (only the counters).
    log_per_minute: int = 30


@dataclass(frozen=True)
class Tallies:
    """A consistent copy of the counters."""

    outcomes: dict[str, int]
    # (live intent, candidate intent) -> requests.
    disagreements: dict[tuple[str, str], int]

    @property
    def agreement(self) -> float | None:
        compared = self.outcomes["agreed"] + self.outcomes["disagreed"]
        return self.outcomes["agreed"] / compared if compared else None


class ShadowRouter:
    """A component (``start``/``stop``) of the language service; ``shadowed(classify)`` is the live
    classifier with the shadow attached."""

    def __init__(
        self, load: Callable[[], Callable[[Sequence[str]], list[Prediction]]], config: ShadowConfig
    ) -> None:
        self._load = load
        self._config = config
        self._predict: Callable[[Sequence[str]], list[Prediction]] | None = None
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(config.queue)
        self._worker: asyncio.Task[None] | None = None
        # Written on the event loop, read by the metrics thread at scrape time.
        self._lock = threading.Lock()
        self._outcomes: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
        self._pairs: Counter[tuple[str, str]] = Counter()
        self._log_window = 0.0
        self._logged_in_window = 0

    async def start(self) -> None:
        self._predict = await asyncio.to_thread(self._load)
        self._worker = asyncio.create_task(self._drain(), name="nlu-shadow")
        _log.info("shadow router %s answers Understand requests beside the live one", self._config.model)

    async def stop(self, grace_s: float) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    def shadowed(
        self, classify: Callable[[str], Awaitable[Prediction]]
    ) -> Callable[[str], Awaitable[Prediction]]:
        async def classify_and_offer(text: str) -> Prediction:
            prediction = await classify(text)
            self.offer(text, prediction.intent)
            return prediction

        return classify_and_offer

    def offer(self, text: str, live_intent: str) -> None:
        """Queue ``text`` for the candidate; never waits (a full queue drops it)."""
        if self._worker is None:
            return
        try:
            self._queue.put_nowait((text, live_intent))
        except asyncio.QueueFull:
            self._count("dropped")

    def tallies(self) -> Tallies:
        with self._lock:
            return Tallies(dict(self._outcomes), dict(self._pairs))

    async def idle(self) -> None:
        """Returns once every request queued so far has been compared (for tests and shutdown)."""
        await self._queue.join()

    async def _drain(self) -> None:
        assert self._predict is not None  # set before the worker starts
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._config.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                predictions = await asyncio.to_thread(self._predict, [text for text, _ in batch])
            except Exception:
                _log.exception("the shadow router failed on %d requests", len(batch))
                self._count("failed", len(batch))
            else:
                for (text, live), candidate in zip(batch, predictions, strict=True):
                    self._record(text, live, candidate)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _record(self, text: str, live: str, candidate: Prediction) -> None:
        if candidate.intent == live:
            self._count("agreed")
            return
        with self._lock:
            self._outcomes["disagreed"] += 1
            self._pairs[(live, candidate.intent)] += 1
        if self._may_log():
            _log.info(
                "shadow router disagrees: live %s, candidate %s (%.2f): %r",
                live,
                candidate.intent,
                candidate.confidence,
                text,
            )

    def _count(self, outcome: str, n: int = 1) -> None:
        with self._lock:
            self._outcomes[outcome] += n

    def _may_log(self) -> bool:
        now = time.monotonic()
        if now - self._log_window >= 60.0:
            self._log_window, self._logged_in_window = now, 0
        if self._logged_in_window >= self._config.log_per_minute:
            return False
        self._logged_in_window += 1
        return True


class ShadowMetrics(Collector):
    """The shadow's tallies as Prometheus counters, read at scrape time."""

    def __init__(self, shadow: ShadowRouter) -> None:
        self._shadow = shadow

    def collect(self) -> Iterator[Metric]:
        tallies = self._shadow.tallies()
        requests = CounterMetricFamily(
            REQUESTS_METRIC,
            "Understand requests offered to the shadow router, by outcome: agreed or disagreed with the "
            "live router's intent, dropped (queue full) or failed.",
            labels=["outcome"],
        )
        for outcome in OUTCOMES:
            requests.add_metric([outcome], tallies.outcomes[outcome])
        yield requests
        pairs = CounterMetricFamily(
            DISAGREEMENTS_METRIC,
            "Requests on which the shadow router chose another intent than the live one, by both intents.",
            labels=["live_intent", "candidate_intent"],
        )
        for (live, candidate), count in sorted(tallies.disagreements.items()):
            pairs.add_metric([live, candidate], count)
        yield pairs


def read_tallies(exposition: str) -> Tallies | None:
    """The shadow's counters from a Prometheus text exposition (``/metrics``); None when it holds
    none (the process runs no shadow router)."""
    outcomes: dict[str, int] = {}
    pairs: dict[tuple[str, str], int] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name == REQUESTS_METRIC:
            for sample in family.samples:
                if sample.name == f"{REQUESTS_METRIC}_total":
                    outcomes[sample.labels["outcome"]] = int(sample.value)
        elif family.name == DISAGREEMENTS_METRIC:
            for sample in family.samples:
                if sample.name == f"{DISAGREEMENTS_METRIC}_total":
                    pairs[(sample.labels["live_intent"], sample.labels["candidate_intent"])] = int(
                        sample.value
                    )
    if not outcomes:
        return None
    return Tallies({o: outcomes.get(o, 0) for o in OUTCOMES}, pairs)


def combined(parts: Sequence[Tallies]) -> Tallies:
    """The sum of several processes' tallies (replicas of the language service)."""
    outcomes: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
    pairs: Counter[tuple[str, str]] = Counter()
    for part in parts:
        outcomes.update(part.outcomes)
        pairs.update(part.disagreements)
    return Tallies(dict(outcomes), dict(pairs))
